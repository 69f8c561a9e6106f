"""Per-request metrics: pure functions of one :class:`~tpsbench.core.record.RequestRecord`.

Every time is derived from the record's integer-nanosecond timestamps and returned in seconds. Notation:
``t_send`` = ``send_ns``, ``t_i`` = ``chunk_ns[i]`` (``t_first`` = ``t_0``, ``t_last`` = ``t_{k-1}``),
``k_i`` = ``chunk_tokens[i]``, ``n`` = output tokens, ``n_first`` = ``k_0``.

Metrics describe what the user received, so they are computed for successful records only: for a failed
record (``record.error`` set, including a stream cut after some chunks) every response metric is None.
Two values are kept for failed records because they are facts of the record, not of the answer:
``n_chunks``, ``sched_lag_s`` (how late the client sent the request) and ``queue_s`` (how much of that
lateness was spent waiting for a ``max_concurrency`` slot).

    >>> from tpsbench.core.record import RequestRecord, TokenSource
    >>> r = RequestRecord(request_id=0, level=0, send_ns=0, end_ns=3_000_000_000,
    ...                   chunk_ns=[1_000_000_000, 2_000_000_000, 3_000_000_000],
    ...                   chunk_tokens=[2, 4, 4], output_tokens=10, token_source=TokenSource.USAGE)
    >>> m = request_metrics(r)
    >>> m["ttft_s"], m["decode_tokens"], m["tps_user"]
    (1.0, 8, 4.0)
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Sequence
from itertools import pairwise

from tpsbench.core.record import NS_PER_S, RequestRecord

MetricValue = float | int | list[float] | None

# Metrics where a larger value is better; every other metric is a latency (smaller is better).
HIGHER_IS_BETTER: frozenset[str] = frozenset(
    {"tps_user", "e2e_tps", "tps_user_aiperf", "tps_user_inferencex", "tps_user_guidellm"}
)

# The keys of request_metrics(), in a stable order.
METRIC_KEYS: tuple[str, ...] = (
    "ttft_s",
    "decode_s",
    "decode_tokens",
    "first_chunk_tokens",
    "tps_user",
    "tpot_s",
    "e2e_s",
    "e2e_tps",
    "tps_user_aiperf",
    "tpot_inferencex_s",
    "tps_user_inferencex",
    "tps_user_guidellm",
    "itl_s",
    "itl_per_token_s",
    "tokens_per_chunk",
    "n_chunks",
    "output_tokens",
    "sched_lag_s",
    "queue_s",
)
# The keys whose value is a list (one entry per gap or chunk); every other key is a scalar.
LIST_KEYS: tuple[str, ...] = ("itl_s", "itl_per_token_s", "tokens_per_chunk")
# Keys that restate a raw field of the record: output_tokens is the field of that name (when recorded),
# queue_s is queue_ns in seconds.
RAW_FIELD_KEYS: tuple[str, ...] = ("output_tokens", "queue_s")


def higher_is_better(metric: str) -> bool:
    """True for throughput metrics (``tps_user``, ``e2e_tps``, the other TPS/user definitions), False for
    latencies and counts."""
    return metric in HIGHER_IS_BETTER


def _chunks(r: RequestRecord) -> tuple[Sequence[int], Sequence[float]]:
    """The token chunks of a successful record (empty for a failed one), checked for consistency."""
    if len(r.chunk_ns) != len(r.chunk_tokens):
        raise ValueError(
            f"request {r.request_id}: {len(r.chunk_ns)} chunk times but {len(r.chunk_tokens)} chunk token "
            "counts; the client must record one count per token chunk"
        )
    if not r.ok:
        return (), ()
    return r.chunk_ns, r.chunk_tokens


def _s(ns: int) -> float:
    return ns / NS_PER_S


def output_tokens(r: RequestRecord) -> float | None:
    """Output tokens n [tokens].

    n = ``output_tokens`` (the server's usage, or the client's tokenizer count) when recorded, else
    sum(chunk_tokens). None for failed records and for a success with neither.
    """
    ns, tokens = _chunks(r)
    if not r.ok:
        return None
    if r.output_tokens is not None:
        return r.output_tokens
    return sum(tokens) if ns else None


def first_chunk_tokens(r: RequestRecord) -> float | None:
    """Tokens in the first token chunk, n_first = k_0 [tokens]. Several when the server batches them."""
    _, tokens = _chunks(r)
    return tokens[0] if tokens else None


def n_chunks(r: RequestRecord) -> int:
    """Number of token chunks received [chunks], k = len(chunk_ns). Defined for failed records too."""
    return len(r.chunk_ns)


def ttft_s(r: RequestRecord) -> float | None:
    """Time to first token [s]: TTFT = t_first - t_send."""
    ns, _ = _chunks(r)
    return _s(ns[0] - r.send_ns) if ns else None


def decode_s(r: RequestRecord) -> float | None:
    """Decode time [s]: t_last - t_first (0.0 for a one-chunk answer)."""
    ns, _ = _chunks(r)
    return _s(ns[-1] - ns[0]) if ns else None


def decode_tokens(r: RequestRecord) -> float | None:
    """Decode tokens [tokens]: n - n_first, the tokens that arrived after the first chunk."""
    n, n_first = output_tokens(r), first_chunk_tokens(r)
    if n is None or n_first is None:
        return None
    return n - n_first


def _decode(r: RequestRecord) -> tuple[float, float] | None:
    """(decode time, decode tokens) when both are positive and there are at least two chunks."""
    ns, _ = _chunks(r)
    dt, dn = decode_s(r), decode_tokens(r)
    if len(ns) < 2 or dt is None or dn is None or dt <= 0 or dn <= 0:
        return None
    return dt, dn


def tps_user(r: RequestRecord) -> float | None:
    """Output speed seen by the user [tokens/s]: TPS/user = (n - n_first) / (t_last - t_first).

    The first chunk is excluded because its wait is TTFT. None for a one-chunk answer, or when the decode
    time or decode tokens are zero (then the speed is not measurable, not infinite).
    """
    d = _decode(r)
    return d[1] / d[0] if d else None


def tpot_s(r: RequestRecord) -> float | None:
    """Time per output token [s/token]: TPOT = (t_last - t_first) / (n - n_first) = 1 / TPS/user.

    None exactly when :func:`tps_user` is None.
    """
    d = _decode(r)
    return d[0] / d[1] if d else None


def e2e_s(r: RequestRecord) -> float | None:
    """Request latency [s]: e2e = t_end - t_send, where t_end (``end_ns``) is the end of the stream."""
    return _s(r.end_ns - r.send_ns) if r.ok else None


def e2e_tps(r: RequestRecord) -> float | None:
    """End-to-end output speed [tokens/s]: n / (t_last - t_send), TTFT included.

    Uses the last token chunk, not ``end_ns``, so the trailing usage event and ``[DONE]`` don't count.
    """
    ns, _ = _chunks(r)
    n = output_tokens(r)
    if not ns or n is None or ns[-1] <= r.send_ns:
        return None
    return n / _s(ns[-1] - r.send_ns)


# Other harnesses' TPS/user definitions, from the same record (tpsbench's own is :func:`tps_user`). The
# "(OSL - 1)" formulas assume one token per chunk after the first: under speculative decoding or batched
# streaming (a first chunk of several tokens) they credit the decode time with tokens that arrived in the
# first chunk, so they read higher than :func:`tps_user`.


def _osl_minus_one(r: RequestRecord) -> tuple[Sequence[int], float] | None:
    """(token chunk times, n - 1) of a successful record with at least two chunks and n > 1."""
    ns, _ = _chunks(r)
    n = output_tokens(r)
    if len(ns) < 2 or n is None or n <= 1:
        return None
    return ns, n - 1


def tps_user_aiperf(r: RequestRecord) -> float | None:
    """AIPerf "output token throughput per user" [tokens/s]: 1 / ITL, ITL = (latency - TTFT) / (OSL - 1).

    AIPerf's request latency ends at the final response (here the last token chunk), so latency - TTFT =
    t_last - t_first and the value is (n - 1) / (t_last - t_first). None without two chunks, n <= 1 or
    zero decode time.
    """
    d = _osl_minus_one(r)
    if d is None or d[0][-1] <= d[0][0]:
        return None
    return d[1] / _s(d[0][-1] - d[0][0])


def tpot_inferencex_s(r: RequestRecord) -> float | None:
    """TPOT as vLLM's benchmark, InferenceX, TensorRT-LLM and MLPerf compute it [s/token]:
    TPOT = (e2e - TTFT) / (OSL - 1) = (t_end - t_first) / (n - 1), e2e running to the end of the stream."""
    d = _osl_minus_one(r)
    if d is None or r.end_ns <= d[0][0]:
        return None
    return _s(r.end_ns - d[0][0]) / d[1]


def tps_user_inferencex(r: RequestRecord) -> float | None:
    """InferenceX / TensorRT-LLM "interactivity" [tokens/s]: 1000 / TPOT_ms = 1 / :func:`tpot_inferencex_s`
    = (n - 1) / (t_end - t_first)."""
    tpot = tpot_inferencex_s(r)
    return 1 / tpot if tpot else None


def tps_user_guidellm(r: RequestRecord) -> float | None:
    """GuideLLM / LLMPerf per-request output tokens per second [tokens/s]: OSL / whole request latency =
    n / (t_end - t_send), TTFT included (so it falls as TTFT rises)."""
    n = output_tokens(r)
    if n is None or r.end_ns <= r.send_ns:
        return None
    return n / _s(r.end_ns - r.send_ns)


def itl_s(r: RequestRecord) -> list[float] | None:
    """Inter-chunk latencies [s]: t_i - t_{i-1} for i = 1..k-1 (empty for a one-chunk answer)."""
    ns, _ = _chunks(r)
    if not ns:
        return None
    return [_s(b - a) for a, b in pairwise(ns)]


def itl_per_token_s(r: RequestRecord) -> list[float] | None:
    """Per-token inter-token latencies [s/token]: (t_i - t_{i-1}) / k_i for i = 1..k-1.

    A chunk of k_i tokens spreads its gap over its tokens. Chunks with k_i <= 0 (possible when counts
    were estimated and scaled) are skipped, so the list can be shorter than :func:`itl_s`.
    """
    ns, tokens = _chunks(r)
    if not ns:
        return None
    return [_s(ns[i] - ns[i - 1]) / tokens[i] for i in range(1, len(ns)) if tokens[i] > 0]


def tokens_per_chunk(r: RequestRecord) -> list[float] | None:
    """Tokens in each token chunk [tokens]: k_0..k_{k-1}. Values above 1 mean batched/speculative output."""
    ns, tokens = _chunks(r)
    return list(tokens) if ns else None


def queue_s(r: RequestRecord) -> float | None:
    """Client queue time [s]: how long an open-loop request waited for a free slot under the level's
    ``max_concurrency`` (``queue_ns``), part of :func:`sched_lag_s`. None without a cap."""
    return _s(r.queue_ns) if r.queue_ns is not None else None


def sched_lag_s(r: RequestRecord) -> float | None:
    """Scheduling lag [s]: t_send - t_scheduled (open loop only; None in closed loop).

    How late the client handed the request to the transport versus the arrival schedule; defined for
    failed records too, because it measures the client, not the server.
    """
    return _s(r.send_ns - r.scheduled_ns) if r.scheduled_ns is not None else None


def dispatch_lag_s(r: RequestRecord) -> float | None:
    """Client dispatch lag [s]: t_send - t_scheduled - queue wait, i.e. :func:`sched_lag_s` without the
    time spent waiting for a free slot under ``max_concurrency`` (:func:`queue_s`). How late the client
    itself was: the client-bound self-check uses it, so a capped level that queues (coordinated omission,
    shown by ``sched_lag_s`` and ``queue_s``) is not mistaken for a slow client. None in closed loop.
    """
    if r.scheduled_ns is None:
        return None
    return _s(r.send_ns - r.scheduled_ns - (r.queue_ns or 0))


def list_metric(r: RequestRecord, key: str) -> list[float] | None:
    """The list-valued metric ``key`` (one of :data:`LIST_KEYS`) of ``r``: what :func:`request_metrics` has
    under that key, for a caller that needs one list at a time (a level's pooled gaps: 2,048 records of
    1,000 chunks hold their three lists in hundreds of MB)."""
    if key == "itl_s":
        return itl_s(r)
    if key == "itl_per_token_s":
        return itl_per_token_s(r)
    if key == "tokens_per_chunk":
        return tokens_per_chunk(r)
    raise KeyError(f"{key!r} is not a list metric (one of {', '.join(LIST_KEYS)})")


def pooled(records: Iterable[RequestRecord], key: str) -> array[float]:
    """Every value of the list metric ``key`` over ``records``, in order, packed in an ``array('d')`` (8
    bytes a value: a level's 4 million gaps as a list of Python floats hold 130 MB), built one record's
    list at a time (:func:`list_metric`)."""
    out = array("d")
    for r in records:
        if v := list_metric(r, key):
            out.extend(v)
    return out


def request_metrics(r: RequestRecord, *, lists: bool = True) -> dict[str, MetricValue]:
    """All per-request metrics of ``r``, keyed by :data:`METRIC_KEYS` (see each function for the formula);
    with ``lists=False`` the :data:`LIST_KEYS` are left out (a ``requests.jsonl`` line keeps scalars only,
    and building the per-gap lists of 1,000 chunks is most of the cost)."""
    _chunks(r)  # validate once, so a malformed record fails with one clear message
    m: dict[str, MetricValue] = {
        "ttft_s": ttft_s(r),
        "decode_s": decode_s(r),
        "decode_tokens": decode_tokens(r),
        "first_chunk_tokens": first_chunk_tokens(r),
        "tps_user": tps_user(r),
        "tpot_s": tpot_s(r),
        "e2e_s": e2e_s(r),
        "e2e_tps": e2e_tps(r),
        "tps_user_aiperf": tps_user_aiperf(r),
        "tpot_inferencex_s": tpot_inferencex_s(r),
        "tps_user_inferencex": tps_user_inferencex(r),
        "tps_user_guidellm": tps_user_guidellm(r),
    }
    if lists:
        for key in LIST_KEYS:
            m[key] = list_metric(r, key)
    m["n_chunks"] = n_chunks(r)
    m["output_tokens"] = output_tokens(r)
    m["sched_lag_s"] = sched_lag_s(r)
    m["queue_s"] = queue_s(r)
    return m
