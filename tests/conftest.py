"""Fixtures shared by the test files: ONE pace server for the whole session.

The pace server (:mod:`tpsbench.reference.pace`) streams at a known pace and logs its own send times: the
ground truth of the end-to-end tests. It runs in a process of its own (so it never shares an event loop
with the client under test) and is started once, on first use, and stopped at the end of the session.
Tests that read its send log reset it first (``POST /log/reset``).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tpsbench.core.serverprocess import ServerProcess

# The pace every test sees: first token after PACE_TTFT_MS, then PACE_TOKENS tokens every PACE_INTERVAL_MS
# (PACE_TOKENS / PACE_INTERVAL_MS * 1000 = 300 tokens/s per request).
PACE_TTFT_MS = 50
PACE_INTERVAL_MS = 10
PACE_TOKENS = 3


@pytest.fixture(scope="session")
def pace_url() -> Iterator[str]:
    """Base URL (with ``/v1``) of the session's pace server."""
    args = ["-m", "tpsbench.reference.pace", "--port", "0"]
    args += [
        "--ttft-ms",
        str(PACE_TTFT_MS),
        "--interval-ms",
        str(PACE_INTERVAL_MS),
        "--tokens",
        str(PACE_TOKENS),
    ]
    with ServerProcess(args) as server:
        yield server.url
