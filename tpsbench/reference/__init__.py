"""The bundled reference endpoint: Llama 4 Maverick on one DGX B200 (8x B200), simulated in real time.

- :mod:`tpsbench.reference.model`: every calibration number (``ModelParams``, with status and source) and
  the pure performance model (``ReferenceModel``: step and prefill times, speculation, ``predict``).
- :mod:`tpsbench.reference.engine`: the continuous-batching engine that runs the model on an asyncio loop.
- :mod:`tpsbench.reference.server`: the OpenAI-compatible aiohttp server, ``start_server``, ``serve``,
  ``ReferenceServerProcess`` (imported from there, so using the model alone does not import aiohttp).

    >>> from tpsbench.reference import ReferenceModel
    >>> round(ReferenceModel().predict(1, 1000, 1000).tps_user)
    1050

See docs/reference-endpoint.md for the measured-vs-assumed split and the simulator's capacity.
"""

from tpsbench.reference.model import DEFAULT_PARAMS, ModelParams, Prediction, ReferenceModel, param_table

__all__ = ["DEFAULT_PARAMS", "ModelParams", "Prediction", "ReferenceModel", "param_table"]
