"""One module per streaming API behind one interface (:class:`.base.StreamApi`): the request it sends and
how its stream is read. ``endpoint.api`` names one:

    api = api_for("messages")
    body = api.build_body(endpoint, model, prompt, workload)
    scan = api.scan(raw.reads)   # token chunks, usage, end, in-stream error
"""

from __future__ import annotations

from tpsbench.client.apis.base import StreamApi
from tpsbench.client.apis.chat import CHAT, COMPLETIONS
from tpsbench.client.apis.messages import MESSAGES
from tpsbench.client.apis.responses import RESPONSES

__all__ = ["APIS", "StreamApi", "api_for"]

APIS: dict[str, StreamApi] = {a.name: a for a in (CHAT, COMPLETIONS, MESSAGES, RESPONSES)}


def api_for(name: str) -> StreamApi:
    """The API module for ``endpoint.api``."""
    try:
        return APIS[name]
    except KeyError:
        raise ValueError(f"unknown api {name!r}: expected one of {', '.join(APIS)}") from None
