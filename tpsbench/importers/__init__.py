"""Other harnesses' results as tpsbench run directories: one module per tool, each with ``detect(path)``
and ``read(path) -> Imported``; :mod:`.imported` writes the run directory. A new harness is a module here
and an entry in :data:`FORMATS`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tpsbench.importers import aiperf, guidellm, inferenceperf, vllm
from tpsbench.importers.imported import Imported, ImportFormatError, write_run

__all__ = ["FORMATS", "ImportFormatError", "Imported", "detect", "read", "write_run"]

FORMATS: dict[str, tuple[Callable[[Path], bool], Callable[[Path], Imported]]] = {
    "aiperf": (aiperf.detect, aiperf.read),
    "guidellm": (guidellm.detect, guidellm.read),
    "vllm": (vllm.detect, vllm.read),
    "inference-perf": (inferenceperf.detect, inferenceperf.read),
}


def detect(path: Path) -> str:
    """The format of ``path``; ImportFormatError naming the formats tried when none fits."""
    if not path.exists():
        raise ImportFormatError(f"{path}: not found")
    for name, (fits, _) in FORMATS.items():
        if fits(path):
            return name
    raise ImportFormatError(
        f"{path}: not a format tpsbench imports (tried {', '.join(FORMATS)}); give --format to say which"
    )


def read(path: Path, fmt: str | None = None) -> Imported:
    """Read ``path`` as ``fmt`` (detected when None)."""
    name = fmt or detect(path)
    if name not in FORMATS:
        raise ImportFormatError(f"unknown import format {name!r}; expected one of {', '.join(FORMATS)}")
    if not path.exists():
        raise ImportFormatError(f"{path}: not found")
    return FORMATS[name][1](path)
