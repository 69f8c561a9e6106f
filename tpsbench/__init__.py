"""tpsbench: measure TTFT and tokens per second per user of OpenAI-compatible LLM endpoints."""

__version__ = "0.1.0"
