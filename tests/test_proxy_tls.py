"""Proxies (HTTPS_PROXY / HTTP_PROXY / NO_PROXY) and endpoint.tls, on loopback: the tests start a TLS front
(self-signed certificate made with the openssl CLI) before the reference endpoint and an HTTP proxy (CONNECT
tunnels and absolute-form requests), send through every transport, and stop them."""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import ssl
import subprocess
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import pytest

from tpsbench.client.client import Client, list_models
from tpsbench.client.network import network_for
from tpsbench.client.proxy import ProxyError, ProxySettings, no_proxy_matches
from tpsbench.client.transport import make_transport
from tpsbench.config.loader import load_scenario
from tpsbench.config.scenario import Endpoint, Scenario, ScenarioError, Workload
from tpsbench.core.record import ErrorKind, RequestRecord
from tpsbench.core.tls import TLSConfigError, tls_context
from tpsbench.load.benchmark import run_benchmark
from tpsbench.load.telemetry import Scraper
from tpsbench.reference.api import MODEL_NAME
from tpsbench.reference.server import ServerHandle, start_server

T = TypeVar("T")
Kind = Literal["h11", "aiohttp", "httpx"]
TRANSPORTS: tuple[Kind, ...] = ("h11", "aiohttp", "httpx")
SECRET = "s3cr3t-pw"

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl CLI")


# --- environment rules ---------------------------------------------------------------------------------


def test_env_variables_as_curl_and_httpx_read_them() -> None:
    s = ProxySettings.from_env(
        {"HTTPS_PROXY": "proxy:3128", "http_proxy": "http://p2:8080", "NO_PROXY": "a.b"}
    )
    assert s.for_url("https://api.x.com/v1") is not None and s.https is not None
    assert (s.https.host, s.https.port) == ("proxy", 3128)  # no scheme: http://
    assert s.http is not None and s.http.host == "p2"
    assert s.for_url("https://a.b/v1") is None and s.for_url("https://x.a.b/v1") is None
    # lower case wins; ALL_PROXY fills in; empty means unset
    s = ProxySettings.from_env(
        {"https_proxy": "http://low:1", "HTTPS_PROXY": "http://up:2", "ALL_PROXY": "h:3"}
    )
    assert s.https is not None and s.https.host == "low" and s.http is not None and s.http.host == "h"
    assert ProxySettings.from_env({"HTTPS_PROXY": ""}).https is None
    # httpoxy: HTTP_PROXY (upper case) is ignored in a CGI environment
    assert ProxySettings.from_env({"HTTP_PROXY": "evil:1", "REQUEST_METHOD": "GET"}).http is None
    assert ProxySettings.from_env({"HTTP_PROXY": "ok:1"}).http is not None


def test_no_proxy_entries() -> None:
    entries = ("*.skip.me", ".example.com", "10.0.0.0/8", "::1", "host:8080", "[fd00::1]:443")
    assert no_proxy_matches("api.example.com", 443, entries)
    assert no_proxy_matches("example.com", 443, entries)
    assert not no_proxy_matches("badexample.com", 443, entries)
    assert no_proxy_matches("10.9.8.7", 80, entries) and not no_proxy_matches("11.0.0.1", 80, entries)
    assert no_proxy_matches("::1", 80, entries)
    assert no_proxy_matches("host", 8080, entries) and not no_proxy_matches("host", 80, entries)
    assert no_proxy_matches("fd00::1", 443, entries) and not no_proxy_matches("fd00::1", 80, entries)
    assert no_proxy_matches("anything", 1, ("*",))
    assert not no_proxy_matches("127.0.0.1", 80, ())  # loopback is not bypassed unless listed


def test_proxy_credentials_become_a_header_and_never_show() -> None:
    s = ProxySettings.from_env({"https_proxy": f"http://me%40corp:{SECRET}@proxy:3128"})
    assert s.https is not None
    expected = "Basic " + base64.b64encode(f"me@corp:{SECRET}".encode()).decode()
    assert s.https.authorization == expected
    block = s.describe("https://api.x.com/v1")
    assert SECRET not in json.dumps(block) and block["proxy"] == "http://REDACTED@proxy:3128"
    with pytest.raises(ProxyError, match="socks5:// proxies are not supported") as info:
        ProxySettings.from_env({"https_proxy": f"socks5://u:{SECRET}@h:1080"})
    assert SECRET not in str(info.value)


def test_tls_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="'client_key' needs 'client_cert'"):
        Endpoint.model_validate({"tls": {"client_key": "k.pem"}})
    with pytest.raises(ValueError, match="no effect with 'verify: false'"):
        Endpoint.model_validate({"tls": {"ca_bundle": "ca.pem", "verify": False}})


def test_missing_and_unusable_tls_files_are_named(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("endpoint:\n  tls:\n    ca_bundle: nope.pem\nload: [{concurrency: 1, requests: 1}]\n")
    with pytest.raises(ScenarioError, match=r"s.yaml:3: endpoint.tls.ca_bundle: file not found: .*nope.pem"):
        load_scenario(path)
    (tmp_path / "bad.pem").write_text("not a certificate")
    with pytest.raises(TLSConfigError, match=r"endpoint\.tls\.ca_bundle: cannot load .*bad\.pem"):
        tls_context(ca_bundle=tmp_path / "bad.pem")
    path.write_text("endpoint:\n  tls:\n    ca_bundle: bad.pem\nload: [{concurrency: 1, requests: 1}]\n")
    assert load_scenario(path).endpoint.tls.ca_bundle == (tmp_path / "bad.pem").resolve()


# --- loopback servers ------------------------------------------------------------------------------------


@dataclass
class Certs:
    cert: Path
    key: Path
    client_cert: Path
    client_key: Path


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    d = tmp_path_factory.mktemp("certs")

    def make(name: str, cn: str) -> tuple[Path, Path]:
        cert, key = d / f"{name}.pem", d / f"{name}.key"
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", f"/CN={cn}",
             "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
            check=True, capture_output=True,
        )  # fmt: skip
        return cert, key

    server = make("server", "127.0.0.1")
    client = make("client", "tpsbench-client")
    return Certs(*server, *client)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


async def _splice(a: tuple[asyncio.StreamReader, asyncio.StreamWriter], b: tuple[Any, Any]) -> None:
    await asyncio.gather(_pipe(a[0], b[1]), _pipe(b[0], a[1]))


@dataclass
class TlsFront:
    """TLS termination on loopback in front of a plain backend (the reference endpoint)."""

    backend_port: int
    context: ssl.SSLContext
    server: asyncio.Server | None = None

    async def start(self) -> int:
        async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            await _splice((r, w), await asyncio.open_connection("127.0.0.1", self.backend_port))

        self.server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=self.context)
        return int(self.server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()


@dataclass
class HttpProxy:
    """An HTTP proxy on loopback: CONNECT tunnels, and absolute-form requests forwarded in origin form.
    Records what it was asked; with ``password`` set, answers 407 to requests without those credentials."""

    password: str | None = None
    seen: list[tuple[str, str, str | None]] = field(default_factory=list)  # method, target, proxy-auth
    server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()

    def url(self, port: int) -> str:
        return (
            f"http://user:{self.password}@127.0.0.1:{port}" if self.password else f"http://127.0.0.1:{port}"
        )

    async def _handle(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        head = (await r.readuntil(b"\r\n\r\n")).decode("latin-1")
        lines = head.split("\r\n")
        method, target, _ = lines[0].split(" ")
        headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:] if x)}
        auth = headers.get("proxy-authorization")
        self.seen.append((method, target, auth))
        wanted = "Basic " + base64.b64encode(f"user:{self.password}".encode()).decode()
        if self.password and auth != wanted:
            w.write(b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n")
            await w.drain()
            w.close()
            return
        if method == "CONNECT":
            host, _, port = target.rpartition(":")
            upstream = await asyncio.open_connection(host, int(port))
            w.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await _splice((r, w), upstream)
            return
        assert target.startswith("http://"), target  # absolute form
        rest = target.removeprefix("http://")
        authority, _, path = rest.partition("/")
        host, _, port = authority.rpartition(":")
        upstream = await asyncio.open_connection(host, int(port))
        kept = [x for x in lines[1:] if x and not x.lower().startswith("proxy-authorization:")]
        upstream[1].write(
            (f"{method} /{path} HTTP/1.1\r\n" + "\r\n".join(kept) + "\r\n\r\n").encode("latin-1")
        )
        await _splice((r, w), upstream)


@dataclass
class Net:
    ref: ServerHandle
    https_port: int
    proxy: HttpProxy
    proxy_port: int


def with_net(
    certs: Certs, main: Callable[[Net], Awaitable[T]], *, password: str | None = None, mtls: bool = False
) -> T:
    async def wrapper() -> T:
        ref = await start_server()
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(certs.cert, certs.key)
        if mtls:
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(certs.client_cert)
        front = TlsFront(ref.port, ctx)
        proxy = HttpProxy(password)
        https_port, proxy_port = await front.start(), await proxy.start()
        try:
            return await main(Net(ref, https_port, proxy, proxy_port))
        finally:
            await proxy.stop()
            await front.stop()
            await ref.stop()

    return asyncio.run(wrapper())


@dataclass
class Prompt:
    messages: list[dict[str, str]] | None = field(default_factory=lambda: [{"role": "user", "content": "hi"}])
    prompt: str | None = None
    input_tokens: int = 1
    max_tokens: int = 8


async def send(
    kind: Kind, base_url: str, *, env: dict[str, str] | None = None, endpoint: Endpoint | None = None
) -> RequestRecord:
    ep = endpoint or Endpoint()
    net = network_for(ep)
    transport = make_transport(kind, proxies=ProxySettings.from_env(env or {}), tls=net.tls)
    client = Client(ep, base_url, MODEL_NAME, transport)
    try:
        reply = await client.send(Prompt(), request_id=0, level=0, workload=Workload())
    finally:
        await transport.aclose()
    return reply.record


def tls_endpoint(certs: Certs, **tls: Any) -> Endpoint:
    return Endpoint.model_validate({"tls": {"ca_bundle": str(certs.cert), **tls}})


# --- through the transports ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", TRANSPORTS)
def test_https_through_a_connect_tunnel_with_proxy_credentials(certs: Certs, kind: Kind) -> None:
    seen: list[tuple[str, str, str | None]] = []
    ports: list[int] = []

    async def main(n: Net) -> RequestRecord:
        ports.append(n.https_port)
        env = {"HTTPS_PROXY": n.proxy.url(n.proxy_port)}
        try:
            return await send(
                kind, f"https://127.0.0.1:{n.https_port}/v1", env=env, endpoint=tls_endpoint(certs)
            )
        finally:
            seen.extend(n.proxy.seen)

    rec = with_net(certs, main, password=SECRET)
    assert rec.ok and rec.output_tokens == 8, rec.error_detail
    auth = "Basic " + base64.b64encode(f"user:{SECRET}".encode()).decode()
    assert seen == [("CONNECT", f"127.0.0.1:{ports[0]}", auth)]  # the request itself went inside the tunnel


@pytest.mark.parametrize("kind", TRANSPORTS)
def test_http_through_a_proxy_is_absolute_form(certs: Certs, kind: Kind) -> None:
    seen: list[tuple[str, str, str | None]] = []
    ports: list[int] = []

    async def main(n: Net) -> RequestRecord:
        ports.append(n.ref.port)
        try:
            return await send(kind, n.ref.url, env={"http_proxy": n.proxy.url(n.proxy_port)})
        finally:
            seen.extend(n.proxy.seen)

    rec = with_net(certs, main)
    assert rec.ok, rec.error_detail
    assert seen == [("POST", f"http://127.0.0.1:{ports[0]}/v1/chat/completions", None)]


@pytest.mark.parametrize("kind", TRANSPORTS)
def test_no_proxy_goes_direct(certs: Certs, kind: Kind) -> None:
    seen: list[Any] = []

    async def main(n: Net) -> RequestRecord:
        env = {"http_proxy": n.proxy.url(n.proxy_port), "no_proxy": "localhost,127.0.0.0/8"}
        try:
            return await send(kind, n.ref.url, env=env)
        finally:
            seen.extend(n.proxy.seen)

    assert with_net(certs, main).ok and seen == []


def test_refused_tunnel_is_a_connect_error_without_credentials(certs: Certs) -> None:
    async def main(n: Net) -> RequestRecord:
        env = {"HTTPS_PROXY": f"http://user:wrong-{SECRET}@127.0.0.1:{n.proxy_port}"}
        return await send(
            "h11", f"https://127.0.0.1:{n.https_port}/v1", env=env, endpoint=tls_endpoint(certs)
        )

    rec = with_net(certs, main, password=SECRET)
    assert rec.error is ErrorKind.CONNECT
    assert rec.error_detail is not None and "407 Proxy Authentication Required" in rec.error_detail
    assert SECRET not in rec.error_detail


@pytest.mark.parametrize("kind", TRANSPORTS)
def test_certificate_checks_ca_bundle_and_verify_false(certs: Certs, kind: Kind) -> None:
    async def main(n: Net) -> tuple[RequestRecord, RequestRecord, RequestRecord]:
        url = f"https://127.0.0.1:{n.https_port}/v1"
        untrusted = await send(kind, url)  # the system store does not know our self-signed certificate
        trusted = await send(kind, url, endpoint=tls_endpoint(certs))
        insecure = await send(kind, url, endpoint=Endpoint.model_validate({"tls": {"verify": False}}))
        return untrusted, trusted, insecure

    untrusted, trusted, insecure = with_net(certs, main)
    assert untrusted.error is ErrorKind.CONNECT and "CERTIFICATE_VERIFY_FAILED" in (
        untrusted.error_detail or ""
    )
    assert trusted.ok and insecure.ok


def test_client_certificate_for_mutual_tls(certs: Certs) -> None:
    async def main(n: Net) -> tuple[RequestRecord, RequestRecord]:
        url = f"https://127.0.0.1:{n.https_port}/v1"
        without = await send("h11", url, endpoint=tls_endpoint(certs))
        mtls = tls_endpoint(certs, client_cert=str(certs.client_cert), client_key=str(certs.client_key))
        return without, await send("h11", url, endpoint=mtls)

    without, with_cert = with_net(certs, main, mtls=True)
    assert not without.ok and with_cert.ok, with_cert.error_detail


async def scrape(
    url: str, endpoint: Endpoint | None = None, proxies: ProxySettings | None = None, *, level: bool = True
) -> tuple[int, str]:
    """Samples got and notes of one level of telemetry on ``url`` (one scrape at its start, one at its end;
    ``level`` False: one scrape, no notes) with ``endpoint``'s TLS context and ``proxies``."""
    got: list[object] = []
    tls = network_for(endpoint).tls if endpoint is not None else None
    scraper = Scraper([url], got.extend, interval_s=60.0, timeout_s=5.0, tls=tls, proxies=proxies)
    notes: list[str] = []
    try:
        if level:
            async with scraper.level(0) as notes:
                pass
        else:
            await scraper.scrape(0)
    finally:
        await scraper.aclose()
    return len(got), " ".join(notes)


def test_telemetry_scrapes_https_metrics_with_the_runs_tls(certs: Certs) -> None:
    """/metrics over https is fetched with endpoint.tls, as the requests are: a private CA, verify false,
    mutual TLS."""

    async def main(n: Net) -> list[tuple[int, str]]:
        url = f"https://127.0.0.1:{n.https_port}/metrics"
        insecure = Endpoint.model_validate({"tls": {"verify": False}})
        mtls = tls_endpoint(certs, client_cert=str(certs.client_cert), client_key=str(certs.client_key))
        return [await scrape(url, e) for e in (None, tls_endpoint(certs), insecure, mtls)]

    untrusted, trusted, insecure, _ = with_net(certs, main)
    assert untrusted[0] == 0 and "2 of 2 scrapes failed (ConnectError: 2)" in untrusted[1]  # unknown CA
    assert trusted[0] > 0 and insecure[0] > 0 and trusted[1] == insecure[1] == ""  # vLLM-style metrics
    _, no_cert, _, with_cert = with_net(certs, main, mtls=True)  # the server asks for a client certificate
    assert no_cert[0] == 0 and with_cert[0] > 0, with_cert[1]


def test_telemetry_takes_the_runs_proxy(certs: Certs, monkeypatch: pytest.MonkeyPatch) -> None:
    """/metrics takes the run's proxy for its URL, as requests do: none for the bundled reference endpoint
    even when the environment names one (httpx alone would follow HTTP_PROXY), the proxy when it applies."""

    async def main(n: Net) -> tuple[tuple[int, str], tuple[int, str]]:
        url = f"http://127.0.0.1:{n.ref.port}/metrics"
        monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # nothing listens there
        direct = await scrape(url, proxies=ProxySettings())
        proxies = ProxySettings.from_env({"HTTP_PROXY": n.proxy.url(n.proxy_port)})
        # one scrape: this test proxy forwards only a connection's first absolute-form request
        via = await scrape(url, proxies=proxies, level=False)
        return direct, via

    seen: list[tuple[str, str, str | None]] = []

    async def watched(n: Net) -> tuple[tuple[int, str], tuple[int, str]]:
        try:
            return await main(n)
        finally:
            seen.extend(n.proxy.seen)

    direct, via = with_net(certs, watched, password=SECRET)
    assert direct[0] > 0 and direct[1] == "", direct[1]
    assert via[0] > 0
    ((method, target, auth),) = seen  # the bundled endpoint's scrapes never reached the proxy
    assert method == "GET" and target.startswith("http://127.0.0.1:") and target.endswith("/metrics") and auth


def test_a_run_through_a_proxy_over_tls_records_both_redacted(
    certs: Certs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    messages: list[str] = []

    class Obs:
        def __getattr__(self, name: str) -> Callable[..., None]:
            return lambda *a, **k: messages.append(str(a[0])) if name == "message" else None

    async def main(n: Net) -> Any:
        monkeypatch.setenv("HTTPS_PROXY", n.proxy.url(n.proxy_port))
        models = await list_models(
            f"https://127.0.0.1:{n.https_port}/v1",
            proxies=ProxySettings.from_env(),
            tls=tls_context(ca_bundle=certs.cert),
        )
        assert models == [MODEL_NAME]
        scenario = Scenario.model_validate(
            {
                "endpoint": {
                    "base_url": f"https://127.0.0.1:{n.https_port}/v1",
                    "tls": {"ca_bundle": str(certs.cert)},
                },
                "workload": {"input_tokens": 16, "output_tokens": 16},
                "load": [{"concurrency": 2, "requests": 4, "warmup": 0}],
            }
        )
        return await run_benchmark(scenario, out_root=tmp_path, observer=Obs())

    outcome = with_net(certs, main, password=SECRET)
    assert outcome.summary["points"][0]["ok"] == 4
    text = (outcome.run_dir / "metadata.json").read_text()
    network = json.loads(text)["endpoint"]["network"]
    assert network["proxy"].startswith("http://REDACTED@127.0.0.1:") and network["proxy_mode"] == "connect"
    assert network["tls"] == {"verify": True, "ca_bundle": str(certs.cert), "client_cert": None}
    assert SECRET not in text and not any(SECRET in m for m in messages)
    assert any(m.startswith("via proxy http://REDACTED@127.0.0.1:") for m in messages)
    # the server's /metrics came over the same TLS (endpoint.tls.ca_bundle) and proxy
    assert (outcome.run_dir / "telemetry.jsonl").stat().st_size > 0
    assert outcome.summary["points"][0]["server"]["generated_tokens"]


def test_the_bundled_reference_endpoint_is_never_proxied(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("http_proxy", "http://corp-proxy:3128")
    assert network_for(Endpoint()).proxies.for_url("http://127.0.0.1:8000/v1") is None
    given = network_for(Endpoint(base_url="http://127.0.0.1:8000/v1"))
    assert given.proxies.for_url("http://127.0.0.1:8000/v1") is not None  # as curl would, unless no_proxy


def test_verify_false_warns_loudly_in_the_header(certs: Certs) -> None:
    net = network_for(Endpoint.model_validate({"tls": {"verify": False}}))
    (line,) = net.header_lines("https://h/v1")
    assert line.startswith("WARNING") and "NOT checked" in line
    assert net.describe("https://h/v1")["tls"]["verify"] is False
    assert net.header_lines("http://h/v1") == []  # plain http: no TLS to warn about
