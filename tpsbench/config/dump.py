"""Writing a scenario: :func:`dump_scenario` gives the YAML of the resolved scenario (defaults filled in,
secrets redacted) for a run directory's ``scenario.yaml``."""

from __future__ import annotations

import io

from ruamel.yaml import YAML
from ruamel.yaml.representer import RoundTripRepresenter

from tpsbench.config.scenario import Scenario
from tpsbench.core.redact import redact_headers, redact_url

__all__ = ["dump_scenario"]


class _Representer(RoundTripRepresenter):
    """Writes None as an explicit ``null``, which reads better than an empty value in a file people open
    to see what ran. A subclass, so ruamel's shared representer is left alone."""


_Representer.add_representer(type(None), lambda r, _: r.represent_scalar("tag:yaml.org,2002:null", "null"))


def dump_scenario(s: Scenario) -> str:
    """YAML text of the resolved scenario (every default filled in), for a run directory's
    ``scenario.yaml``. It loads back with :func:`load_scenario`.

    Secrets never reach it: the model only holds ``api_key_env`` (a variable name), and header values
    whose name looks secret (``Authorization``, ``*key*``, ``*token*``, ...) as well as credentials in
    ``base_url`` are replaced (:mod:`tpsbench.core.redact`).
    """
    data = s.model_dump(mode="json")
    endpoint = data["endpoint"]
    endpoint["headers"] = redact_headers(endpoint["headers"])
    if endpoint["base_url"] is not None:
        endpoint["base_url"] = redact_url(endpoint["base_url"])
    yaml = YAML(typ="rt")
    yaml.default_flow_style = False
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.Representer = _Representer
    buf = io.StringIO()
    buf.write("# Scenario as resolved by tpsbench (defaults filled in; secrets redacted).\n")
    yaml.dump(data, buf)
    return buf.getvalue()
