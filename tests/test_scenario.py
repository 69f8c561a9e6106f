"""Scenario loading: every error names file, line, field and what was expected."""

from __future__ import annotations

import math
import pickle
import textwrap
from pathlib import Path

import pytest

from tpsbench.config.caveats import scenario_warnings
from tpsbench.config.dump import dump_scenario
from tpsbench.config.loader import load_scenario
from tpsbench.config.scenario import (
    Distribution,
    Level,
    Scenario,
    ScenarioError,
)
from tpsbench.core.redact import REDACTED

REPO = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, text: str, name: str = "s.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def issues(path: Path) -> list[tuple[int | None, str, str]]:
    """(line, field, message) of every issue load_scenario reports."""
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    err = info.value
    assert all(i.file == str(path) for i in err.issues)
    return [(i.line, i.field, i.message) for i in err.issues]


def test_valid_scenario_loads_with_defaults(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        name: ok
        load:
          - concurrency: 2
            requests: 10
          - rate: 2.5
            duration_s: 30
        """,
    )
    s = load_scenario(path)
    assert s.name == "ok"
    assert s.endpoint.api == "chat" and s.endpoint.base_url is None
    assert [lv.label for lv in s.load] == ["c=2", "rate=2.5/s"]
    assert s.workload.input_tokens == 1000


def test_error_format_and_line_of_wrong_type(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        load:
          - concurrency: 4
            requests: 10
          - rate: fast
            duration_s: 5
        """,
    )
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    err = info.value
    assert str(err) == f"{path}:4: load[1].rate: expected a number > 0, got 'fast'"
    assert (err.file, err.line, err.field) == (str(path), 4, "load[1].rate")
    assert err.message == "expected a number > 0, got 'fast'"


def test_typo_key_did_you_mean(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        endpoint:
          api: chat
          modle: llama
        load: [{concurrency: 1, requests: 1}]
        """,
    )
    assert issues(path) == [(3, "endpoint.modle", "unknown key 'modle' (did you mean 'model'?)")]


def test_unknown_top_level_keys(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        load: [{concurrency: 1, requests: 1}]
        model: llama
        concurency: 3
        colour: blue
        """,
    )
    got = issues(path)
    assert got[0] == (2, "model", "unknown key 'model' (did you mean 'endpoint.model'?)")
    assert got[1] == (
        3,
        "concurency",
        "unknown key 'concurency' (did you mean 'concurrency', a key of each item of 'load'?)",
    )
    assert got[2][:2] == (4, "colour")
    assert got[2][2].startswith("unknown key 'colour' (allowed: name, endpoint, workload, load,")


def test_rate_must_be_positive_and_levels_need_one_kind(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        load:
          - rate: 0
            requests: 5
          - concurrency: 2
            rate: 3
            requests: 5
          - concurrency: 2
        """,
    )
    assert issues(path) == [
        (2, "load[0].rate", "expected a number > 0, got 0"),
        (
            4,
            "load[1]",
            "set exactly one of 'concurrency' (closed loop), 'rate' (open loop) or 'trace' (replay)",
        ),
        (7, "load[2]", "set 'requests', 'duration_s' or both, so the level stops by itself"),
    ]


def test_all_errors_are_collected_and_sorted_by_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        endpoint:
          api: chatt
          base_url: localhost:8000
        workload:
          input_tokens: {mena: 100}
          output_tokens: 0
        load:
          - concurrency: true
            requests: 2.5
        slo:
          ttft: {p99: 2}
          tps_user: {p51: 3}
        """,
    )
    assert issues(path) == [
        (
            2,
            "endpoint.api",
            "expected one of 'chat', 'completions', 'messages', 'responses', got 'chatt' "
            "(did you mean 'chat'?)",
        ),
        (3, "endpoint.base_url", "expected an http:// or https:// URL, got 'localhost:8000'"),
        (5, "workload.input_tokens.mean", "required key 'mean' is missing (expected a number > 0)"),
        (5, "workload.input_tokens.mena", "unknown key 'mena' (did you mean 'mean'?)"),
        (
            6,
            "workload.output_tokens",
            "expected an integer >= 1 or a mapping with keys mean, std, min, max, got 0",
        ),
        (8, "load[0].concurrency", "expected an integer >= 1, got true"),
        (9, "load[0].requests", "expected an integer >= 1, got 2.5"),
        (11, "slo.ttft", "unknown key 'ttft' (did you mean 'ttft_s'?)"),
        (12, "slo.tps_user.p51", "unknown key 'p51' (did you mean 'p50'?)"),
    ]
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert len(str(info.value).splitlines()) == 9


def test_wrong_shapes(tmp_path: Path) -> None:
    path = write(tmp_path, "endpoint: 5\nload: {concurrency: 3}\n")
    assert issues(path) == [
        (1, "endpoint", "expected a mapping, got 5"),
        (2, "load", "expected a non-empty list of mappings, got a mapping"),
    ]
    assert issues(write(tmp_path, "load: []\n")) == [
        (1, "load", "expected a non-empty list of mappings, got an empty list")
    ]
    assert issues(write(tmp_path, "name: x\n")) == [
        (None, "", "set 'load' (a list of load levels) or 'sweep' (levels grown until the knee)")
    ]


def test_open_loop_options_on_closed_loop_level(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        load:
          - concurrency: 2
            requests: 4
            arrival: gamma
          - rate: 2
            requests: 4
            burstiness: 0.5
        """,
    )
    assert issues(path) == [
        (2, "load[0]", "'arrival' and 'burstiness' apply to open-loop levels ('rate') only"),
        (5, "load[1]", "'burstiness' applies to 'arrival: gamma' only"),
    ]


@pytest.mark.parametrize(
    ("text", "line", "start"),
    [
        ("load: [\n", 2, "invalid YAML: "),
        ("a: 1\na: 2\n", 2, "invalid YAML: found duplicate key"),
        ("load:\n  - concurrency: 1\n   bad: [\n", 3, "invalid YAML: "),
        ("- 1\n- 2\n", 1, "expected a mapping of scenario keys (load, endpoint, ...), got a list"),
        ("", None, "the file is empty"),
    ],
)
def test_not_a_scenario(tmp_path: Path, text: str, line: int | None, start: str) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(text)
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert info.value.line == line
    assert info.value.message.startswith(start)
    assert str(info.value).startswith(f"{path}{'' if line is None else f':{line}'}: ")


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match=r"nope\.yaml: no such file"):
        load_scenario(tmp_path / "nope.yaml")
    with pytest.raises(ScenarioError, match="is a directory"):
        load_scenario(tmp_path)
    (tmp_path / "bin.yaml").write_bytes(b"\xff\xfe\x00load")
    with pytest.raises(ScenarioError, match="not UTF-8"):
        load_scenario(tmp_path / "bin.yaml")


def test_prompts_file_is_resolved_from_the_scenario_directory(tmp_path: Path) -> None:
    sub = tmp_path / "sc"
    sub.mkdir()
    (sub / "p.jsonl").write_text('{"prompt": "hi"}\n')
    path = write(sub, "workload:\n  prompts_file: p.jsonl\nload: [{concurrency: 1, requests: 1}]\n")
    s = load_scenario(path)
    assert s.workload.prompts_file == (sub / "p.jsonl").resolve()


def test_missing_prompts_file_names_the_field_with_other_errors(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        workload:
          prompts_file: missing.jsonl
        load: [{concurrency: 0, requests: 1}]
        """,
    )
    got = issues(path)
    assert got[0][:2] == (2, "workload.prompts_file")
    assert "prompts file not found" in got[0][2] and str(tmp_path / "missing.jsonl") in got[0][2]
    assert got[1] == (3, "load[0].concurrency", "expected an integer >= 1, got 0")


def test_resolved_warmup() -> None:
    assert Level(concurrency=8, requests=1).resolved_warmup == 8
    assert Level(rate=2.5, requests=1).resolved_warmup == math.ceil(2.5) == 3
    assert Level(rate=2.5, requests=1, warmup=0).resolved_warmup == 0
    assert Level(concurrency=8, duration_s=5).open_loop is False


def test_distribution_bounds() -> None:
    with pytest.raises(ValueError, match="'max' \\(3\\) must be >= 'min' \\(5\\)"):
        Distribution(mean=4, min=5, max=3)


def base() -> Scenario:
    return Scenario.model_validate(
        {
            "endpoint": {"model": "m", "headers": {"X-Trace": "t"}},
            "load": [{"rate": 2, "duration_s": 30, "warmup": 3}, {"rate": 4, "duration_s": 30}],
        }
    )


def test_overrides_endpoint_and_model() -> None:
    s = base().with_overrides(base_url="http://h:1/v1", model="other")
    assert (s.endpoint.base_url, s.endpoint.model) == ("http://h:1/v1", "other")
    assert s.endpoint.headers == {"X-Trace": "t"} and len(s.load) == 2
    assert base().with_overrides() == base()


def test_concurrency_override_sizes_each_level() -> None:
    """requests = max(first level's requests or 20, 4 x c), its duration kept, warmup one wave of c."""
    s = base().with_overrides(concurrency=[1, 8])
    assert [(lv.concurrency, lv.rate, lv.requests, lv.duration_s, lv.resolved_warmup) for lv in s.load] == [
        (1, None, 20, 30.0, 1),
        (8, None, 32, 30.0, 8),
    ]
    closed = Scenario.model_validate({"load": [{"concurrency": 1, "requests": 8, "warmup": 1}]})
    levels = closed.with_overrides(concurrency=[1, 4, 16]).load or []
    assert [(lv.requests, lv.resolved_warmup) for lv in levels] == [(8, 1), (16, 4), (64, 16)]
    assert not scenario_warnings(closed.with_overrides(concurrency=[1, 4, 16]))


def test_small_levels_warn_and_measure_at_least_their_concurrency() -> None:
    s = Scenario.model_validate(
        {"load": [{"concurrency": 64, "requests": 4}, {"concurrency": 4, "requests": 8}]}
    )
    assert s.load is not None and s.load[0].measured_requests == 64 and s.load[1].measured_requests == 8
    (issue,) = scenario_warnings(s)
    warning = str(issue)
    assert "c=64 (4 requests)" in warning and "c=64 raised to their concurrency" in warning
    assert "c=4" not in warning


def test_invalid_overrides_raise_scenario_error() -> None:
    with pytest.raises(
        ScenarioError, match=r"^command line: load\[1\]\.concurrency: expected an integer >= 1"
    ):
        base().with_overrides(concurrency=[1, 0])
    with pytest.raises(ScenarioError, match=r"endpoint\.base_url: expected an http"):
        base().with_overrides(base_url="ftp://x")
    with pytest.raises(ScenarioError, match="at least one"):
        base().with_overrides(concurrency=[])


def test_dump_round_trips_and_never_holds_secrets(tmp_path: Path) -> None:
    s = Scenario.model_validate(
        {
            "name": "d",
            "endpoint": {
                "base_url": "https://user:hunter2@api.example.com/v1?api_key=sk-123&x=1",
                "api_key_env": "MY_KEY",
                "headers": {"Authorization": "Bearer sk-456", "X-Api-Key": "sk-789", "X-Trace": "keep"},
            },
            "workload": {"input_tokens": {"mean": 100, "std": 10}},
            "load": [
                {"concurrency": 2, "requests": 3},
                {"rate": 1.5, "arrival": "gamma", "burstiness": 0.5, "duration_s": 9},
            ],
            "slo": {"ttft_s": {"p99": 2.0}},
        }
    )
    text = dump_scenario(s)
    for secret in ("hunter2", "sk-123", "sk-456", "sk-789"):
        assert secret not in text
    assert "MY_KEY" in text and "keep" in text
    path = tmp_path / "scenario.yaml"
    path.write_text(text)
    back = load_scenario(path)
    assert back.load == s.load and back.workload == s.workload and back.slo == s.slo
    assert back.endpoint.headers["Authorization"] == REDACTED


def test_scenario_error_pickles() -> None:
    err = ScenarioError("f.yaml", 3, "load[0].rate", "bad")
    err2 = pickle.loads(pickle.dumps(ScenarioError.from_issues([*err.issues, *err.issues])))
    assert str(err2) == "f.yaml:3: load[0].rate: bad\nf.yaml:3: load[0].rate: bad"
    assert (err2.file, err2.line, err2.field, err2.message) == ("f.yaml", 3, "load[0].rate", "bad")


@pytest.mark.parametrize("path", sorted(p for p in (REPO / "scenarios").glob("*.yaml")), ids=lambda p: p.name)
def test_bundled_scenarios_are_valid(path: Path) -> None:
    load_scenario(path)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://127.0.0.1:99999/v1", "port 99999 is out of range (1-65535)"),
        ("http://local host:8000", "invalid host 'local host:8000'"),
        ("http://127.0.0.1:0/v1", "port 0 is out of range"),
        ("http://-bad-.example/v1", "invalid host name '-bad-.example'"),
        ("ftp://h/v1", "expected an http:// or https:// URL"),
        ("http://h:x/v1", "Port could not be cast to integer"),
    ],
)
def test_base_urls_are_checked_fully_with_file_and_line(tmp_path: Path, url: str, message: str) -> None:
    path = write(
        tmp_path, f'name: x\nendpoint:\n  base_url: "{url}"\nload: [{{concurrency: 1, requests: 2}}]\n'
    )
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert str(info.value).startswith(f"{path}:3: endpoint.base_url: ") and message in str(info.value)


def test_a_good_base_url_passes_and_one_without_v1_warns() -> None:
    for url in ("http://[::1]:8000/v1", "https://u:p@api.example.com/v1?api-version=1", "http://h.local/v1/"):
        assert (
            scenario_warnings(Scenario.model_validate({"endpoint": {"base_url": url}, "load": [LEVEL]})) == []
        )
    s = Scenario.model_validate({"endpoint": {"base_url": "http://127.0.0.1:8000"}, "load": [LEVEL]})
    assert "does not end in /v1" in str(scenario_warnings(s)[0])


LEVEL = {"concurrency": 1, "requests": 2}


def test_gate_thresholds_are_checked_by_the_gate_rule(tmp_path: Path) -> None:
    """`validate` rejects exactly what `tpsbench gate` rejects (one rule: core/metricspec.py)."""
    from tpsbench.core.metricspec import metric_spec

    good = write(tmp_path, "load: [{concurrency: 1, requests: 1}]\ngate: {thresholds: {ttft_s_p99: 15}}\n")
    assert load_scenario(good).gate.thresholds == {"ttft_s_p99": 15.0}
    for name in ("latency", "tps_usr_p50", "ttft_s_p42"):
        with pytest.raises(ValueError):
            metric_spec(name)
        text = f"load: [{{concurrency: 1, requests: 1}}]\ngate: {{thresholds: {{{name}: 5}}}}\n"
        bad = write(tmp_path, text)
        with pytest.raises(ScenarioError, match=name):
            load_scenario(bad)


def test_the_packaged_default_scenario_is_the_one_in_scenarios() -> None:
    # `tpsbench run` with no scenario outside a checkout reads tpsbench/data/maverick-b200.yaml: it must be
    # byte for byte scenarios/maverick-b200.yaml (edit that one, then copy it over)
    packaged = REPO / "tpsbench" / "data" / "maverick-b200.yaml"
    assert packaged.read_bytes() == (REPO / "scenarios" / "maverick-b200.yaml").read_bytes(), (
        "cp scenarios/maverick-b200.yaml tpsbench/data/"
    )
    load_scenario(packaged)


def test_the_default_scenario_does_not_warn_about_its_own_sizing() -> None:
    from tpsbench.results.summary import MIN_SAMPLES_P99

    s = load_scenario(REPO / "scenarios" / "maverick-b200.yaml")
    assert scenario_warnings(s) == []
    assert all((lv.measured_requests or 0) >= MIN_SAMPLES_P99 for lv in s.fixed_levels)
    assert (REPO / "scenarios" / "maverick-b200.yaml").read_bytes() == (
        REPO / "tpsbench" / "data" / "maverick-b200.yaml"
    ).read_bytes()


def test_warnings_carry_file_line_and_field_like_errors(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        name: x
        endpoint:
          base_url: "http://127.0.0.1:8000"
          tls:
            verify: false
        load:
          - {concurrency: 1, requests: 4}
          - {concurrency: 64,
             requests: 4}
        """,
    )
    s = load_scenario(path)
    got = [(w.file, w.line, w.field) for w in scenario_warnings(s)]
    assert got == [
        (str(path), 9, "load[1].requests"),
        (str(path), 3, "endpoint.base_url"),
        (str(path), 4, "endpoint.tls"),
    ]
    lines = [str(w) for w in scenario_warnings(s)]
    assert lines[0].startswith(f"{path}:9: load[1].requests: fewer measured requests than 2 x concurrency")
    assert lines[1].startswith(f"{path}:3: endpoint.base_url: 'http://127.0.0.1:8000' does not end in /v1")
    # what survives a copy keeps its place; what the command line replaced is placed there
    assert [str(w) for w in scenario_warnings(s.model_copy(update={"workers": 2}))] == lines
    over = s.with_overrides(base_url="http://127.0.0.1:8000/")
    assert [(w.file, w.line, w.field) for w in scenario_warnings(over)] == [
        (str(path), 9, "load[1].requests"),
        ("command line", None, "endpoint.base_url"),
        (str(path), 4, "endpoint.tls"),
    ]
    assert str(scenario_warnings(over)[1]).startswith("command line: endpoint.base_url: ")
    assert pickle.loads(pickle.dumps(s)).source == s.source  # workers get the same places
    assert (
        s == load_scenario(path).with_overrides() == Scenario.model_validate(s.model_dump())
    )  # not its value


def test_a_sweep_warning_is_placed_at_the_sweep(tmp_path: Path) -> None:
    path = write(tmp_path, "sweep:\n  concurrency: {start: 64, max: 128}\n  requests: 8\n")
    (issue,) = scenario_warnings(load_scenario(path))
    assert (issue.line, issue.field) == (3, "sweep.requests")


@pytest.mark.parametrize(
    ("endpoint", "warned"),
    [
        (
            "{base_url: 'http://h:8000/v1', tls: {verify: false}}",
            "verify set, but base_url 'http://h:8000/v1'",
        ),
        ("{base_url: 'http://h:8000/v1', tls: {ca_bundle: ca.pem}}", "ca_bundle set, but base_url"),
        ("{tls: {verify: false}}", "verify set, but there is no base_url (the bundled reference endpoint"),
        ("{base_url: 'https://h:8000/v1', tls: {verify: false}}", None),
        ("{base_url: 'http://h:8000/v1', tls: {verify: true}}", None),  # the default: nothing is ignored
        ("{base_url: 'http://h:8000/v1'}", None),
    ],
)
def test_tls_on_a_plain_http_endpoint_is_a_warning_at_its_line(
    tmp_path: Path, endpoint: str, warned: str | None
) -> None:
    (tmp_path / "ca.pem").write_text("not read by the loader\n")
    path = write(tmp_path, f"load: [{{concurrency: 1, requests: 2}}]\nendpoint: {endpoint}\n")
    s = load_scenario(path)
    tls = [str(w) for w in scenario_warnings(s) if w.field == "endpoint.tls"]
    if warned is None:
        assert tls == []
    else:
        assert tls == [f"{path}:2: endpoint.tls: {tls[0].split('endpoint.tls: ', 1)[1]}"]
        assert warned in tls[0] and "ignored" in tls[0]
    # an https:// endpoint given on the command line is what counts
    https = s.with_overrides(base_url="https://h:8000/v1")
    assert [w for w in scenario_warnings(https) if w.field == "endpoint.tls"] == []


def test_validate_prints_each_warning_with_its_place(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from tpsbench.cli.app import app

    path = write(
        tmp_path,
        "endpoint:\n  base_url: http://h:8000/v1\n  tls: {verify: false}\n"
        "load: [{concurrency: 1, requests: 2}]\n",
    )
    res = CliRunner().invoke(app, ["validate", str(path)])
    assert res.exit_code == 0, res.output
    assert (
        f"warning: {path}:3: endpoint.tls: verify set, but base_url 'http://h:8000/v1' is plain http"
        in " ".join(res.output.split())
    )


def test_a_unix_socket_needs_an_absolute_path_and_an_http_base_url(tmp_path: Path) -> None:
    def endpoint(block: str) -> Path:
        return write(tmp_path, f"endpoint: {block}\nload: [{{concurrency: 1, requests: 2}}]\n")

    ok = load_scenario(endpoint("{base_url: 'http://localhost/v1', unix_socket: /run/vllm.sock}"))
    assert ok.endpoint.unix_socket == "/run/vllm.sock"
    ((line, field, message),) = issues(endpoint("{base_url: 'http://localhost/v1', unix_socket: vllm.sock}"))
    assert (line, field) == (1, "endpoint.unix_socket") and "expected an absolute path" in message
    long = "/" + "s" * 120
    ((_, _, message),) = issues(endpoint(f"{{base_url: 'http://localhost/v1', unix_socket: {long}}}"))
    assert "at most 107 bytes" in message
    for base in ("", "base_url: 'https://localhost/v1', "):
        ((_, field, message),) = issues(endpoint(f"{{{base}unix_socket: /run/vllm.sock}}"))
        assert field == "endpoint" and "needs an http:// base_url" in message
    # on the command line, with the file's own URL
    s = ok.with_overrides(unix_socket="/tmp/other.sock")
    assert s.endpoint.unix_socket == "/tmp/other.sock"
