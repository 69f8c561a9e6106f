"""What is valid in a scenario but likely to give numbers nobody should trust, or to do nothing: its
warnings, which ``validate`` and ``run`` print. Each is a :class:`~tpsbench.config.errors.ScenarioIssue`
placed like the loader's errors, ``file:line: field: message`` (from :attr:`Scenario.source`; a value
given on the command line is placed there), one per cause:

- closed-loop levels measuring fewer than 2 x concurrency requests (the first such level is placed, all
  are named);
- a base URL whose path does not end in ``/v1``;
- ``endpoint.tls`` set while nothing is fetched over https (an ``http://`` base URL, or none: the bundled
  reference endpoint), where it would be silently ignored.

>>> from tpsbench.config.scenario import Scenario
>>> s = Scenario.model_validate({"load": [{"concurrency": 64, "requests": 4}]})
>>> str(scenario_warnings(s)[0])[:78]
'load[0].requests: fewer measured requests than 2 x concurrency at c=64 (4 requ'
"""

from __future__ import annotations

from urllib.parse import urlsplit

from tpsbench.config.errors import ScenarioIssue
from tpsbench.config.scenario import Level, Scenario, Tls
from tpsbench.core.redact import redact_url

__all__ = ["scenario_warnings"]


def scenario_warnings(s: Scenario) -> list[ScenarioIssue]:
    """The scenario's warnings, in the order of the list in the module docstring."""
    src = s.source
    out: list[ScenarioIssue] = []
    levels: list[tuple[tuple[str | int, ...], Level]] = [
        (("load", i, "requests"), lv) for i, lv in enumerate(s.fixed_levels)
    ]
    if s.sweep is not None:
        levels += [(("sweep", "requests"), s.sweep.level(v)) for v in s.sweep.values()]
    small = [
        (p, lv) for p, lv in levels if lv.concurrency and lv.requests and lv.requests < 2 * lv.concurrency
    ]
    if small:
        which = ", ".join(f"{lv.label} ({lv.requests} requests)" for _, lv in small)
        raised = [lv.label for _, lv in small if (lv.requests or 0) < (lv.concurrency or 0)]
        message = (
            f"fewer measured requests than 2 x concurrency at {which}: most of them start in the first "
            "wave, so the level barely holds its load"
            + (f"; {', '.join(raised)} raised to their concurrency" if raised else "")
            + ". Hint: set requests >= 2 x concurrency"
        )
        out.append(src.issue(small[0][0], message))
    url = s.endpoint.base_url
    if url is not None and not urlsplit(url).path.rstrip("/").endswith("/v1"):
        out.append(
            src.issue(
                ["endpoint", "base_url"],
                f"{redact_url(url)!r} does not end in /v1; OpenAI-compatible servers (vLLM, SGLang, "
                "llama.cpp, TGI) serve /v1/chat/completions",
            )
        )
    tls_set = [k for k, v in s.endpoint.tls if v != Tls.model_fields[k].default]
    if tls_set and (url is None or urlsplit(url).scheme == "http"):
        if url:
            why = f"base_url {redact_url(url)!r} is plain http"
        else:
            why = "there is no base_url (the bundled reference endpoint is plain http)"
        message = (
            f"{', '.join(tls_set)} set, but {why}: TLS settings apply to https:// URLs only and are ignored "
            "here. Hint: use an https:// base_url, or remove endpoint.tls"
        )
        out.append(src.issue(["endpoint", "tls"], message))
    return out
