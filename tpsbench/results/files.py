"""The run directory's files: their names, their format versions (with a written history) and the one
reader of each. The writer (:mod:`tpsbench.results.rundir`) and every reader (summary re-reads, gate,
report, compare, the notebook, benchmarks) go through this module; nothing else opens these files.

``results/<stamp>-<name>/`` holds:

- ``scenario.yaml``: the scenario as resolved (:data:`SCENARIO`);
- ``metadata.json``: where and with what the run was measured, never a secret (:data:`METADATA`);
- ``requests.jsonl``: one line per finished request, appended as it finishes (:data:`REQUESTS`); a run
  archived with ``gzip`` (``requests.jsonl.gz``, :data:`REQUESTS_GZ`) reads the same (:func:`requests_path`);
- ``summary.json`` / ``summary.csv``: one point per load level (:data:`SUMMARY_JSON`, :data:`SUMMARY_CSV`);
- ``source.json``: only in a run imported from another harness (``tpsbench import``): the tool, the files
  read, which record fields were derived rather than read, and the source's own aggregates (:data:`SOURCE`);
- ``telemetry.jsonl``: the server's Prometheus samples scraped while each level ran, one line per sample
  ``{t_ns, level, url, name, labels, value}`` on the records' clock (:data:`TELEMETRY`; absent when
  telemetry was off). Read with :func:`read_samples`; same torn-line rule as requests.jsonl.

Format history (pyperf ``_bench.py`` style). One version rule for both files: a reader accepts every
version listed here and refuses any other (newer or unknown) with a one-line error naming the file, the
version found and the versions this tpsbench reads.

``summary.json`` ``schema`` (:data:`SUMMARY_SCHEMAS`):

- 1 (tpsbench 0.1): ``{schema, tool, run, slo, points[], capacity?}``; each point has its load
  (``concurrency`` or ``rate`` + ``arrival``), metric blocks (``ttft_s``, ``tps_user``, ``tpot_s``,
  ``itl_s``, ``e2e_s``, ``tokens_per_chunk``, ``output_tokens``, ``sched_lag_s``: ``stats.describe``
  blocks) and ``output_tps``, ``output_tps_per_gpu``, ``request_rate``, ``error_rate``, ``goodput``,
  ``slo_met``, ``errors``, ``token_sources``, ``short_outputs``, ``self_check``, ``warnings``.
- 2: a run of N > 1 repeats (``--repeat N``) adds a top-level ``repeats`` block (``count``, ``order``,
  ``cooldown_s``, ``runs[]``: each repeat's start/end wall time, prompt nonce, requests and failures;
  ``differences[]``: what differed between repeats) and, on each point, a ``repeats`` block (``n``,
  ``ci_level``, ``metrics``: ``{<block>_<stat> | output_tps | ...: {values[], mean, sd, cv, ci}}``, one
  value per repeat, the t interval of their mean). The point's distributions pool every repeat's
  requests (the per-request estimate); its throughputs (``output_tps``, ``output_tps_per_gpu``,
  ``request_rate``, ``goodput``, ``window_s``) are the mean over repeats (a window spanning repeats would
  count the cool-downs). A single run writes no ``repeats`` block, so its summary reads as schema 1 did.
  Points written since the production workloads also carry (added keys, no version change; readers of
  older summaries see them missing): ``trace`` (a trace level's file and speed-up, else None), ``ramp_s``,
  ``max_concurrency``, a ``queue_s`` block (client queue time under ``max_concurrency``) and ``by_turn``
  (multi-turn levels: per turn ``turn``, ``n``, ``input_tokens`` and ``ttft_s`` / ``tps_user`` / ``e2e_s``
  blocks; None otherwise).

``requests.jsonl`` record format, a ``format`` key on every line (:data:`RECORD_FORMATS`):

- 1 (tpsbench 0.1, no ``format`` key): ``RequestRecord.to_dict()`` plus the per-request metrics
  ``ttft_s, decode_s, decode_tokens, first_chunk_tokens, tps_user, tpot_s, e2e_s, e2e_tps, itl_s,
  n_chunks, sched_lag_s``. The ``itl_s`` list repeated the chunk times (about 26 KB a request at 1k tokens).
  Lines written after the TPS/user definitions were added also carry ``tps_user_aiperf``,
  ``tpot_inferencex_s``, ``tps_user_inferencex`` and ``tps_user_guidellm`` (readers ignore metric keys).
- 2: ``{"format": 2}`` plus ``RequestRecord.to_dict()`` plus the *scalar* metrics (:data:`LINE_METRICS`);
  every list is stored once: ``chunk_ns`` (raw arrival times) and ``chunk_tokens`` (integral counts written
  as integers, read back as floats). Derive ``itl_s`` and the other lists on read with
  :mod:`tpsbench.results.metrics`.
- 3: format 2 plus ``repeat`` (0-based repeat of the plan, :attr:`RequestRecord.repeat`); earlier formats
  read back as repeat 0. Lines also carry ``queue_ns`` (open-loop wait for a ``max_concurrency`` slot),
  ``prompt_index`` (row of the prompts file, dataset or trace), ``session_id`` and ``turn`` (multi-turn);
  lines without them read back as None.
- 4: format 3 with the chunk arrival times delta-encoded: ``chunk_dns`` (integers: each chunk's time minus
  the previous chunk's, the first minus ``send_ns``) replaces ``chunk_ns``; read back as ``chunk_ns`` by a
  running sum (exact: integers). A 1k-token request at about 900 chunks goes from 15.1 KB (format 3) to
  9.6 KB (26.9 KB in format 1); the line stays plain JSON, readable with ``head`` and ``jq``. gzip with a
  flush per record (so Ctrl-C keeps every finished request) measured 3.7 KB for about 300 us more than the
  encoding per record; the writer keeps plain lines (readable with ``head``, ``tail -f`` and ``jq`` while a
  run goes on). The reader reads a gzipped file as well (``gzip requests.jsonl`` to archive a run: 3.7 KB a
  request), a stream cut short included.
- 5: format 4 plus ``cooldown`` (:attr:`RequestRecord.cooldown`: an unmeasured request sent after the
  measured ones to hold the level's load until the last measured one ends, ``Level.cooldown``); earlier
  formats read back as False. Measured requests are the records with neither ``warmup`` nor ``cooldown``.

Torn lines (one rule): records are appended and flushed one line at a time, so a run killed mid-write
(Ctrl-C) can leave a partial *last* line: it is skipped with a warning naming file and line. A bad line
anywhere else means a corrupt file: :class:`RunFileError` naming file and line.

    >>> from tpsbench.core.record import Packed, RequestRecord
    >>> line = record_line(RequestRecord(request_id=0, level=0, send_ns=0, end_ns=10, chunk_ns=[5, 10],
    ...                                  chunk_tokens=[1.0, 2.0]))
    >>> line["format"], line["chunk_dns"], line["chunk_tokens"], "itl_s" in line
    (5, [5, 5], [1, 2], False)
    >>> r = record_from_line(line, "requests.jsonl:1")
    >>> r.chunk_ns, r.chunk_tokens
    (Packed('q', [5, 10]), Packed('d', [1.0, 2.0]))
"""

from __future__ import annotations

import itertools
import json
import operator
import warnings
import zlib
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any

import numpy as np

from tpsbench.core.record import Packed, RequestRecord
from tpsbench.results import metrics
from tpsbench.results.telemetry import Sample

__all__ = [
    "LINE_METRICS",
    "METADATA",
    "RECORD_FORMAT",
    "RECORD_FORMATS",
    "REQUESTS",
    "REQUESTS_GZ",
    "SCENARIO",
    "SOURCE",
    "SUMMARY_CSV",
    "SUMMARY_JSON",
    "SUMMARY_SCHEMA",
    "SUMMARY_SCHEMAS",
    "TELEMETRY",
    "RunFileError",
    "check_summary",
    "iter_record_lines",
    "read_metadata",
    "read_records",
    "read_samples",
    "read_scenario",
    "read_summary",
    "record_from_line",
    "record_line",
    "requests_path",
]

REQUESTS = "requests.jsonl"
REQUESTS_GZ = REQUESTS + ".gz"  # an archived run (gzip): read like the plain file
SUMMARY_JSON = "summary.json"
SUMMARY_CSV = "summary.csv"
METADATA = "metadata.json"
SCENARIO = "scenario.yaml"
TELEMETRY = "telemetry.jsonl"
SOURCE = "source.json"  # an imported run: the source tool, its files, its own aggregates, derived fields

SUMMARY_SCHEMA = 2  # what the writer writes
SUMMARY_SCHEMAS: frozenset[int] = frozenset({1, 2})  # what the readers read (history in the docstring)
RECORD_FORMAT = 5
RECORD_FORMATS: frozenset[int] = frozenset({1, 2, 3, 4, 5})

# The per-request metrics written beside the raw fields of each requests.jsonl line (format 2): the
# scalars of metrics.METRIC_KEYS, in its order, but for those that restate a raw field
# (metrics.RAW_FIELD_KEYS: a derived value must not overwrite a raw one, nor store it twice); the lists
# (metrics.LIST_KEYS) are derived from chunk_ns and chunk_tokens on read.
LINE_METRICS: tuple[str, ...] = tuple(
    k for k in metrics.METRIC_KEYS if k not in metrics.LIST_KEYS and k not in metrics.RAW_FIELD_KEYS
)


class RunFileError(ValueError):
    """A run-directory file is missing, unreadable or not in a format this tpsbench reads; the message
    names the file (and the line, for records)."""


def _check_version(found: Any, supported: frozenset[int], current: int, what: str, where: str) -> None:
    """The one version rule: ``found`` must be one of ``supported``."""
    if isinstance(found, int) and not isinstance(found, bool) and found in supported:
        return
    known = ", ".join(str(v) for v in sorted(supported))
    if isinstance(found, int) and not isinstance(found, bool) and found > current:
        raise RunFileError(
            f"{where}: {what} {found} is newer than this tpsbench reads ({known}); upgrade tpsbench"
        )
    raise RunFileError(
        f"{where}: {what} {found!r} is not supported (this tpsbench reads {known}). Hint: use the tpsbench "
        "version that wrote it"
    )


# --------------------------------------------------------------------------------------------------
# summary.json


def check_summary(doc: Any, where: str | Path = "summary") -> dict[str, Any]:
    """``doc`` if it is a summary this tpsbench reads (an object with a supported ``schema`` and a list of
    point objects); :class:`RunFileError` naming ``where`` otherwise."""
    where = str(where)
    if not isinstance(doc, dict):
        raise RunFileError(f"{where}: expected a JSON object, got {type(doc).__name__}")
    if "schema" not in doc:
        raise RunFileError(f"{where}: no 'schema' field; is this a tpsbench summary.json?")
    _check_version(doc["schema"], SUMMARY_SCHEMAS, SUMMARY_SCHEMA, "summary schema", where)
    points = doc.get("points")
    if not isinstance(points, list) or not all(isinstance(p, dict) for p in points):
        raise RunFileError(f"{where}: 'points' must be a list of load-point objects")
    return doc


def _read_json(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RunFileError(f"{path}: not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise RunFileError(f"{path}: cannot read ({e})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise RunFileError(f"{path}: not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})") from None


def read_summary(path: str | Path) -> dict[str, Any]:
    """Read and check a ``summary.json`` (see :func:`check_summary`)."""
    path = Path(path)
    if not path.exists() and path.parent.is_dir():
        raise RunFileError(f"{path}: not found; is {path.parent} a tpsbench run directory?")
    return check_summary(_read_json(path), path)


def read_metadata(path: str | Path) -> dict[str, Any]:
    """Read ``metadata.json``; an absent file is an empty dict (it is optional for readers)."""
    path = Path(path)
    if not path.exists():
        return {}
    doc = _read_json(path)
    if not isinstance(doc, dict):
        raise RunFileError(f"{path}: expected a JSON object, got {type(doc).__name__}")
    return doc


def read_scenario(path: str | Path) -> dict[str, Any] | None:
    """The run's ``scenario.yaml`` as plain data (not validated: a run directory's scenario may name files
    that are not there any more); None when absent."""
    path = Path(path)
    if not path.exists():
        return None
    from ruamel.yaml import YAML  # only needed when a reader asks for the scenario

    try:
        data = YAML(typ="safe").load(path.read_text(encoding="utf-8"))
    except Exception as e:  # ruamel raises many unrelated classes for bad YAML
        raise RunFileError(f"{path}: cannot read the scenario ({e})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise RunFileError(f"{path}: expected a mapping at the top of the scenario")
    return data


# --------------------------------------------------------------------------------------------------
# requests.jsonl


def record_line(r: RequestRecord) -> dict[str, Any]:
    """One ``requests.jsonl`` line (record format :data:`RECORD_FORMAT`): ``format``, the raw
    ``r.to_dict()`` and the scalar metrics in :data:`LINE_METRICS`. Each list is stored once."""
    m = metrics.request_metrics(r, lists=False)
    raw = r.to_dict()
    del raw["chunk_ns"]
    raw["chunk_dns"] = list(map(operator.sub, r.chunk_ns, [r.send_ns, *r.chunk_ns[:-1]]))
    # integral counts as integers; a stream repeats a few counts, so each distinct one is converted once
    integral = {k: int(k) if float(k).is_integer() else k for k in set(r.chunk_tokens)}
    raw["chunk_tokens"] = list(map(integral.__getitem__, r.chunk_tokens))
    return {"format": RECORD_FORMAT, **raw, **{k: m[k] for k in LINE_METRICS}}


def _undelta(line: Mapping[str, Any], where: str) -> dict[str, Any]:
    """A format-4 (or later) line with ``chunk_ns`` rebuilt from ``chunk_dns`` (see the format history)."""
    d = dict(line)
    deltas, send = d.pop("chunk_dns", None), d.get("send_ns")
    if not isinstance(deltas, list) or not all(type(x) is int for x in deltas) or type(send) is not int:
        raise RunFileError(f"{where}: not a request record (format 4+: integer send_ns and chunk_dns)")
    try:
        d["chunk_ns"] = _times(deltas, send)
    except OverflowError:
        raise RunFileError(f"{where}: not a request record (a chunk time does not fit in 64 bits)") from None
    return d


_INT64_MAX = 2**63 - 1


def _times(deltas: list[int], send: int) -> Packed:
    """The chunk times of a delta-encoded line, packed: the running sum of ``deltas`` from ``send``. numpy
    sums (25 us for 1,000 chunks where a Python running sum and its packing take 90) when no partial sum can
    leave int64; else exactly in Python (OverflowError when a time does not fit)."""
    out = Packed("q")
    d = np.array(deltas, dtype=np.int64)
    if d.size and abs(send) + int(np.abs(d).max()) * d.size > _INT64_MAX:
        out.extend(itertools.accumulate(deltas, initial=send))
        del out[0]
        return out
    np.cumsum(d, out=d)
    d += send
    out.frombytes(d.data.cast("B"))
    return out


def record_from_line(line: Mapping[str, Any], where: str) -> RequestRecord:
    """The :class:`RequestRecord` of one parsed line (any format in :data:`RECORD_FORMATS`); derived metric
    keys are ignored. :class:`RunFileError` naming ``where`` (``file:line``) for anything else."""
    version = line.get("format", 1)
    _check_version(version, RECORD_FORMATS, RECORD_FORMAT, "record format", where)
    fields = _undelta(line, where) if version >= 4 else dict(line)
    try:
        # packed (core.record.Packed): 16 bytes a chunk instead of about 90; counts read back as floats
        if not isinstance(ns := fields.get("chunk_ns", ()), Packed):  # formats 1 to 3: the times themselves
            fields["chunk_ns"] = Packed("q", ns)
        fields["chunk_tokens"] = Packed("d", fields.get("chunk_tokens", ()))
    except (TypeError, OverflowError) as e:
        raise RunFileError(
            f"{where}: not a request record (chunk times: integers, chunk tokens: numbers; {e})"
        ) from None
    try:
        r = RequestRecord.from_dict(fields)
    except (TypeError, ValueError) as e:
        raise RunFileError(f"{where}: not a request record ({e})") from None
    if isinstance(r.level, bool) or not isinstance(r.level, int):
        raise RunFileError(f"{where}: not a request record (no integer 'level')")
    return r


def requests_path(run_dir: str | Path) -> Path:
    """The records file of a run directory: requests.jsonl, else requests.jsonl.gz when only that is there
    (the plain path when neither is, so that a reader's error names the file a run writes)."""
    run_dir = Path(run_dir)
    plain, gz = run_dir / REQUESTS, run_dir / REQUESTS_GZ
    return gz if not plain.exists() and gz.exists() else plain


def _warn(message: str) -> None:
    warnings.warn(message, RuntimeWarning, stacklevel=4)


def _gunzip(f: IO[bytes], path: Path, warn: Callable[[str], None]) -> Iterator[bytes]:
    """The lines of a gzip file (one member or several), streamed. A stream cut short (no end marker) yields
    what it holds, with a warning; its partial last line then goes by the torn-line rule."""
    z, rest, fed = zlib.decompressobj(wbits=31), b"", False
    while chunk := f.read(1 << 16):
        while chunk:
            try:
                data = z.decompress(chunk)
            except zlib.error as e:
                raise RunFileError(f"{path}: not a valid gzip file ({e})") from None
            fed, chunk = not z.eof, z.unused_data if z.eof else b""
            if z.eof:
                z = zlib.decompressobj(wbits=31)  # a further member (gzip output appended to the file)
            *lines, rest = (rest + data).split(b"\n")
            yield from (line + b"\n" for line in lines)
    if fed:
        warn(f"{path}: the gzip stream ends early (the file was cut); read the records it holds")
    if rest:
        yield rest


def iter_record_lines(
    path: str | Path, *, warn: Callable[[str], None] | None = None
) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(where, line)`` for each line of a ``requests.jsonl`` (``where`` = ``file:line``), by the torn-line
    rule of the module docstring, gzip-compressed when the name ends in ``.gz``; ``warn`` (default: a
    RuntimeWarning) receives the torn-line message."""
    path = Path(path)
    bad: tuple[int, str] | None = None  # a line that did not parse: fatal unless it turns out to be the last
    try:
        f = path.open("rb")  # bytes: a cut can split a UTF-8 sequence, which json.loads reports cleanly
    except FileNotFoundError:
        raise RunFileError(f"{path}: not found") from None
    except OSError as e:
        raise RunFileError(f"{path}: cannot read ({e})") from None
    with f:
        for lineno, raw in enumerate(_gunzip(f, path, warn or _warn) if path.suffix == ".gz" else f, 1):
            if not raw.strip():
                continue
            if bad is not None:
                raise RunFileError(f"{path}:{bad[0]}: not a JSON record ({bad[1]})")
            try:
                d = json.loads(raw)
            except ValueError as e:  # JSONDecodeError and UnicodeDecodeError
                bad = (lineno, str(e))
                continue
            if not isinstance(d, dict):
                raise RunFileError(f"{path}:{lineno}: expected a JSON object, got {type(d).__name__}")
            yield f"{path}:{lineno}", d
    if bad is not None:
        (warn or _warn)(f"{path}:{bad[0]}: skipped a truncated last line (the run was probably interrupted)")


def read_records(path: str | Path, *, warn: Callable[[str], None] | None = None) -> Iterator[RequestRecord]:
    """Stream the :class:`RequestRecord` of each line of a ``requests.jsonl`` (any supported format)."""
    for where, line in iter_record_lines(path, warn=warn):
        yield record_from_line(line, where)


# --------------------------------------------------------------------------------------------------
# telemetry.jsonl


def read_samples(path: str | Path, *, warn: Callable[[str], None] | None = None) -> Iterator[Sample]:
    """Stream the telemetry samples of a ``telemetry.jsonl``; nothing when the file is absent (telemetry
    off, or a run from before it existed). Torn last line: as for requests.jsonl."""
    path = Path(path)
    if not path.is_file():
        return
    for where, line in iter_record_lines(path, warn=warn):
        try:
            yield Sample.from_dict(line)
        except (KeyError, TypeError, ValueError) as e:
            raise RunFileError(f"{where}: not a telemetry sample ({e})") from None
