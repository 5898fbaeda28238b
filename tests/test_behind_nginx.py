"""microweb behind a real nginx, run with ``examples/deploy/nginx.conf`` as shipped.

The shipped file is read and only what ties it to a machine is replaced: its ports (free ones on
127.0.0.1), its certificate (a self-signed one made with ``openssl``), and ``/etc`` paths. It
is wrapped in the ``http`` block that ``/etc/nginx/nginx.conf`` gives it. Behind it,
``microweb serve tests/nginx_app.py --forwarded-allow-ips 127.0.0.1`` runs under Waitress and
under Uvicorn, as ``docs/deployment.md`` says. The client connects from 127.0.0.2, an address
the app does not trust, so the client the app sees can only have come from nginx's headers.
One more test replaces the ``X-Forwarded-*`` lines with the ``Forwarded`` line that
``docs/plugins-proxy.md`` gives, in front of ``ProxyHeaders(forwarded=True)``.

Skipped when there is no ``nginx`` on ``PATH`` or in ``/usr/sbin`` (Debian: ``apt-get install
nginx``), or no ``openssl``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from servers import HOST, REPO_ROOT, free_port, read_log, running, wait_for
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

# NOTE: Debian installs it in /usr/sbin, which a user's PATH may lack.
NGINX = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
OPENSSL = shutil.which("openssl")


def _has_ipv6() -> bool:
    """Return whether this machine's loopback takes IPv6 (some containers' does not)."""
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


IPV6 = _has_ipv6()

pytestmark = [
    pytest.mark.servers,
    pytest.mark.skipif(
        NGINX is None, reason="no nginx binary on PATH or in /usr/sbin (apt-get install nginx)"
    ),
    pytest.mark.skipif(OPENSSL is None, reason="no openssl binary on PATH"),
]

SHIPPED = REPO_ROOT / "examples" / "deploy" / "nginx.conf"
DOCUMENTED = REPO_ROOT / "docs" / "plugins-proxy.md"
# NOTE: the lines of every location that the documented Forwarded line replaces.
X_FORWARDED_LINES = "".join(
    f"        proxy_set_header {line};\n"
    for line in (
        "X-Forwarded-For $remote_addr",
        "X-Forwarded-Proto $scheme",
        "X-Forwarded-Host $app_host",
        'Forwarded ""',
    )
)
TIMEOUT = 5.0
SITE = "example.com"
# NOTE: the client's own address; the app trusts 127.0.0.1 (nginx) only.
CLIENT = "127.0.0.2"
# NOTE: what a client writes to pass for someone else, in every forwarded header.
SPOOFED = {
    "x-forwarded-for": "6.6.6.6",
    "x-forwarded-proto": "http",
    "x-forwarded-host": "evil.example",
    "forwarded": 'for=7.7.7.7;proto=http;host="evil.example"',
    "x-request-id": "chosen-by-the-client",
}


@dataclass(frozen=True)
class Site:
    """nginx in front of one ``microweb serve``: where to reach it, and the logs."""

    server: str
    https_port: int
    http_port: int
    upstream: int
    error_log: Path
    app_log: Path

    def url(self, path: str) -> str:
        """Return the HTTPS URL of ``path`` on nginx."""
        return f"https://{HOST}:{self.https_port}{path}"

    @property
    def access_log(self) -> Path:
        """Return nginx's access log, which sits beside its error log."""
        return self.error_log.with_name("access.log")

    def errors(self) -> list[str]:
        """Return nginx's error log lines of level error and above."""
        levels = ("[error]", "[crit]", "[alert]", "[emerg]")
        return [
            line for line in read_log(self.error_log).splitlines() if line[20:].startswith(levels)
        ]

    def client(self, *, http2: bool = False) -> httpx.Client:
        """Return a client that connects from ``CLIENT`` and asks for ``SITE``."""
        transport = httpx.HTTPTransport(local_address=CLIENT, verify=False, http2=http2)
        return httpx.Client(
            transport=transport, headers={"host": SITE}, timeout=TIMEOUT, trust_env=False
        )


def replace(text: str, old: str, new: str) -> str:
    """Return ``text`` with ``old`` replaced; fail when the shipped file no longer has it."""
    assert old in text, f"{SHIPPED} no longer has {old!r}; update {Path(__file__).name}"
    return text.replace(old, new)


def nginx_config(work: Path, *, http_port: int, https_port: int, upstream: int) -> str:
    """Return the shipped config, tied to this machine, inside an ``http`` block."""
    site = SHIPPED.read_text()
    site = replace(site, "server 127.0.0.1:8000;", f"server {HOST}:{upstream};")
    site = replace(site, "listen 80;", f"listen {HOST}:{http_port};")
    site = replace(site, "listen 443 ssl", f"listen {HOST}:{https_port} ssl")
    if IPV6:
        site = replace(site, "listen [::]:80;", f"listen [::1]:{http_port};")
        site = replace(site, "listen [::]:443 ssl", f"listen [::1]:{https_port} ssl")
    else:
        site = replace(site, "    listen [::]:80;\n", "")
        site = replace(site, "    listen [::]:443 ssl http2;\n", "")
    site = replace(site, "/etc/letsencrypt/live/example.com/fullchain.pem", str(work / "cert.pem"))
    site = replace(site, "/etc/letsencrypt/live/example.com/privkey.pem", str(work / "key.pem"))
    site = replace(site, "/var/log/nginx/microweb.access.log", str(work / "access.log"))
    # NOTE: a root nginx hands its workers to `nobody`, who could not write the temporary files.
    user = "user root;\n" if os.geteuid() == 0 else ""
    temp = "".join(
        f"{kind}_temp_path {work / kind};\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return (
        f"{user}worker_processes 1;\npid {work / 'nginx.pid'};\n"
        f"error_log {work / 'error.log'} info;\nevents {{ worker_connections 128; }}\n"
        f"http {{\naccess_log {work / 'access.log'};\n{temp}{site}\n}}\n"
    )


def make_certificate(work: Path) -> None:
    """Write a self-signed certificate for ``SITE`` to ``work``."""
    command = [
        *(str(OPENSSL), "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
        *("-keyout", str(work / "key.pem"), "-out", str(work / "cert.pem"), "-subj", f"/CN={SITE}"),
    ]
    subprocess.run(command, check=True, capture_output=True, timeout=30)


def nginx_command(work: Path, *more: str) -> list[str]:
    """Return the command line that runs nginx with ``work/nginx.conf``."""
    conf = work / "nginx.conf"
    return [str(NGINX), "-p", str(work), "-e", str(work / "error.log"), "-c", str(conf), *more]


@contextmanager
def serving_site(
    work: Path, server: str, *, forwarded: bool = False, uds: bool = False
) -> Iterator[Site]:
    """Run nginx with the shipped config in front of ``microweb serve`` under ``server``.

    With ``forwarded``, nginx writes ``Forwarded`` with the line of ``docs/plugins-proxy.md``
    instead of ``X-Forwarded-*``, and the app reads it (``ProxyHeaders(forwarded=True)``).
    With ``uds``, the app listens on a Unix socket (``--uds``, ``--forwarded-allow-ips "*"``),
    nginx's upstream as ``docs/deployment.md`` writes it.
    """
    make_certificate(work)
    upstream, http_port, https_port = free_port(), free_port(), free_port()
    config = nginx_config(work, http_port=http_port, https_port=https_port, upstream=upstream)
    if forwarded:
        config = replace(config, X_FORWARDED_LINES, f"        {documented_forwarded_line()}\n")
    socket_path = work / "app.sock" if uds else None
    if socket_path is not None:
        config = replace(config, f"server {HOST}:{upstream};", f"server unix:{socket_path};")
    (work / "nginx.conf").write_text(config)
    checked = subprocess.run(nginx_command(work, "-t"), capture_output=True, text=True, timeout=30)
    assert checked.returncode == 0, f"nginx refuses the shipped config:\n{checked.stderr}"
    app = [sys.executable, "-m", "microweb", "serve", "tests/nginx_app.py", "--server", server]
    if socket_path is None:
        app += ["--host", HOST, "--port", str(upstream)]
    else:
        app += ["--uds", str(socket_path)]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    if forwarded:
        env["NGINX_APP_FORWARDED"] = "1"
    else:
        app += ["--forwarded-allow-ips", "127.0.0.1" if socket_path is None else "*"]
    app_log = work / "app.log"
    with running(app, port=upstream, log=app_log, env=env, uds=socket_path):
        nginx = nginx_command(work, "-g", "daemon off;")
        with running(nginx, port=https_port, log=work / "nginx.out"):
            yield Site(server, https_port, http_port, upstream, work / "error.log", app_log)


def documented_forwarded_line() -> str:
    """Return the ``Forwarded`` line that ``docs/plugins-proxy.md`` gives for nginx."""
    lines = [
        line.strip()
        for line in DOCUMENTED.read_text().splitlines()
        if line.strip().startswith('proxy_set_header Forwarded "for=')
    ]
    assert len(lines) == 1, f"{DOCUMENTED} no longer has one Forwarded line for nginx"
    return lines[0]


@pytest.fixture(scope="module", params=["waitress", "uvicorn"])
def site(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Site]:
    """nginx with the shipped config, in front of ``microweb serve`` under one server."""
    server: str = request.param
    with serving_site(tmp_path_factory.mktemp(f"nginx-{server}"), server) as site:
        yield site


@pytest.mark.parametrize("http2", [False, True], ids=["http1.1", "http2"])
# NOTE: /events itself, as examples/notes/ has it, was nginx's 301 to /events/ (no route there).
@pytest.mark.parametrize("path", ["/whoami", "/events", "/events/whoami", "/ws/whoami"])
def test_the_app_sees_the_client_and_url_nginx_saw(site: Site, path: str, http2: bool) -> None:
    with site.client(http2=http2) as client:
        answer = client.get(site.url(path), headers=SPOOFED)
    assert answer.http_version == ("HTTP/2" if http2 else "HTTP/1.1")
    seen = answer.json()
    # NOTE: nginx's own $request_id, which RequestID reuses, never the client's.
    request_id = seen.pop("request_id")
    assert re.fullmatch("[0-9a-f]{32}", request_id)
    assert answer.headers["x-request-id"] == request_id
    assert seen == {
        "client": [CLIENT, 0],
        "scheme": "https",
        "host": SITE,
        "url": f"https://{SITE}{path}",
        "external": f"https://{SITE}/whoami",
        "forwarded_for": CLIENT,
        "forwarded": None,  # NOTE: the client's own, cleared: other code might believe it.
    }


def test_nginx_logs_the_request_id_the_app_got_and_who_answered(site: Site) -> None:
    # NOTE: docs/deployment.md: nginx can log the $request_id that the app's AccessLog logs; the
    # shipped log_format does, with the upstream, so that nginx's own 502s can be told apart.
    with site.client() as client:
        request_id = client.get(site.url("/whoami"), headers=SPOOFED).json()["request_id"]
    logged = f" id={request_id} upstream={HOST}:{site.upstream} 200 "
    wait_for(
        lambda: logged in read_log(site.access_log),
        "nginx's access line with the request ID",
        site.access_log,
        timeout=TIMEOUT,
    )
    (line,) = [line for line in read_log(site.access_log).splitlines() if logged in line]
    assert line.startswith(f"{CLIENT} - ")


def test_a_client_past_the_rate_limit_gets_429_not_503(tmp_path: Path) -> None:
    # NOTE: nginx's limit_req answers 503 unless told otherwise, which monitors and load
    # balancers take for the app being down. An nginx of its own: the refusals are in its error
    # log, which other tests check. nginx's limit alone: one server behind it is enough.
    statuses: set[int] = set()
    with serving_site(tmp_path, "uvicorn") as limited, limited.client() as client:
        # NOTE: 20 a second past a burst of 40; a slow machine needs more of them to get there.
        for _ in range(400):
            statuses.add(client.get(limited.url("/whoami")).status_code)
            if 429 in statuses:
                break
    assert statuses == {200, 429}


@pytest.mark.skipif(not IPV6, reason="no IPv6 on this machine's loopback")
def test_an_ipv6_client_reaches_the_app_with_its_address(site: Site) -> None:
    # NOTE: the shipped file listened on IPv4 only: a client of the name's AAAA record was refused.
    with httpx.Client(verify=False, headers={"host": SITE}, timeout=TIMEOUT) as client:
        seen = client.get(f"https://[::1]:{site.https_port}/whoami").json()
        plain = client.get(f"http://[::1]:{site.http_port}/whoami")
    assert (seen["client"], seen["forwarded_for"], seen["url"]) == (
        ["::1", 0],
        "::1",
        f"https://{SITE}/whoami",
    )
    assert (plain.status_code, plain.headers["location"]) == (301, f"https://{SITE}/whoami")


def test_redirects_point_at_the_public_url(site: Site) -> None:
    with site.client() as client:
        answer = client.get(site.url("/go"), headers=SPOOFED)
        plain = client.get(f"http://{HOST}:{site.http_port}/whoami")
    assert (answer.status_code, answer.headers["location"]) == (307, f"https://{SITE}/whoami")
    assert (plain.status_code, plain.headers["location"]) == (301, f"https://{SITE}/whoami")


@pytest.mark.parametrize("http2", [False, True], ids=["http1.1", "http2"])
def test_a_site_on_another_port_keeps_the_port_in_its_urls(site: Site, http2: bool) -> None:
    # NOTE: what a browser sends for https://example.com:PORT/. nginx's $host drops the port:
    # the app built its links without it, and CSRF took the site's own Origin for another's.
    public = f"{SITE}:{site.https_port}"
    with site.client(http2=http2) as client:
        seen = client.get(site.url("/whoami"), headers={"host": public}).json()
        moved = client.get(site.url("/go"), headers={"host": public})
    assert (seen["host"], seen["url"]) == (public, f"https://{public}/whoami")
    assert seen["external"] == moved.headers["location"] == f"https://{public}/whoami"


def test_an_http10_request_without_a_host_gets_the_server_name(site: Site) -> None:
    # NOTE: $http_host is empty then (and for HTTP/3): the map falls back to $host.
    raw = b"GET /whoami HTTP/1.0\r\n\r\n"
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    connection = socket.create_connection((HOST, site.https_port), timeout=TIMEOUT)
    with connection, context.wrap_socket(connection) as tls:
        tls.sendall(raw)
        answer = b""
        while chunk := tls.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.split(b"\r\n")[0] == b"HTTP/1.1 200 OK", answer
    assert json.loads(body)["host"] == SITE


def _upstream_connections(port: int) -> set[str] | None:
    """Return nginx's connections to the app (any state) by their local address, on Linux."""
    try:
        table = Path("/proc/net/tcp").read_text().splitlines()[1:]
    except OSError:
        return None
    remote = f":{port:04X}"
    return {fields[1] for fields in (line.split() for line in table) if fields[2].endswith(remote)}


def test_early_answers_leave_the_next_request_whole(site: Site) -> None:
    body = b"x" * 300_000
    early = [("/private", 401), ("/nope", 404), ("/small", 413), ("/echo", 200)]
    with site.client() as client:
        for path, status in early:
            assert client.post(site.url(path), content=body).status_code == status, path
            assert client.get(site.url("/whoami")).json()["client"] == [CLIENT, 0], path
        assert client.get(site.url("/boom")).status_code == 500
        assert client.get(site.url("/whoami")).status_code == 200
        before = _upstream_connections(site.upstream)
        for _ in range(5):
            assert client.get(site.url("/whoami")).status_code == 200
        after = _upstream_connections(site.upstream)
    assert site.errors() == []
    if before is not None and after is not None:
        assert len(after - before) <= 1, "nginx opened a connection to the app per request"


def test_a_cookie_as_big_as_browsers_keep_gets_through(site: Site) -> None:
    # NOTE: nginx holds the app's response head in proxy_buffer_size, 4 KiB by default: a
    # session cookie past about 3.5 KiB (which browsers keep) was a 502, "upstream sent too big
    # header", until the shipped config gave it 8 KiB.
    with site.client() as client:
        answer = client.get(site.url("/cookie/4096"))
    assert answer.status_code == 200, site.errors()
    assert answer.headers["set-cookie"].startswith(f"big={'x' * 4093};")


def test_bodies_at_and_over_the_limits(site: Site) -> None:
    limit = 10 << 20  # NOTE: the app's default max_body_size, and nginx's client_max_body_size.
    with site.client() as client:
        assert client.post(site.url("/echo"), content=b"x" * limit).json() == {"length": limit}
        over = client.post(site.url("/echo"), content=b"x" * (limit + 1))
        assert over.status_code == 413 and "nginx" in over.text  # refused by nginx first
        chunks = (b"y" * 1000 for _ in range(3))
        assert client.post(site.url("/small"), content=chunks).status_code == 413
        assert client.get(site.url("/whoami")).status_code == 200


def test_events_arrive_one_by_one_and_a_client_that_leaves_ends_the_stream(site: Site) -> None:
    with site.client() as client, client.stream("GET", site.url("/events/ticks")) as answer:
        assert answer.headers["content-type"] == "text/event-stream"
        lines = answer.iter_lines()
        # NOTE: the stream never ends: a buffering proxy would hold these until its buffer
        # fills, minutes from now, and the read would time out.
        assert [next(lines) for _ in range(4)] == ["data: tick 0", "", "data: tick 1", ""]
    wait_for(
        lambda: "ticks: stream closed" in read_log(site.app_log),
        "end of the stream in the app after the client left",
        site.app_log,
        timeout=TIMEOUT,
    )


def test_a_plain_stream_arrives_as_it_goes_under_events(site: Site) -> None:
    with site.client() as client, client.stream("GET", site.url("/events/lines")) as answer:
        assert "x-accel-buffering" not in answer.headers
        lines = answer.iter_lines()
        # NOTE: as above, a buffering nginx would hold the lines and the read would time out.
        assert [next(lines) for _ in range(3)] == ["line 0", "line 1", "line 2"]


def test_a_stream_that_says_so_is_not_buffered_under_location_slash(site: Site) -> None:
    # NOTE: docs/streaming.md: nginx buffers a response in `location /` unless it says
    # X-Accel-Buffering: no; nginx takes the header in and does not pass it on.
    with site.client() as client, client.stream("GET", site.url("/lines")) as answer:
        assert "x-accel-buffering" not in answer.headers
        lines = answer.iter_lines()
        assert [next(lines) for _ in range(3)] == ["line 0", "line 1", "line 2"]


def _websocket(
    site: Site, headers: dict[str, str] | None = None, path: str = "/ws/echo"
) -> ClientConnection:
    """Open ``path`` through nginx over TLS 1.2, from ``CLIENT``."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    # NOTE: websockets' sync client reads its socket in a thread of its own while the caller's
    # thread writes, and an ssl.SSLSocket is not safe for that. Under TLS 1.3 that thread
    # reads nginx's session tickets, which come after the handshake, just as the caller writes
    # the WebSocket handshake: about one connection in a few hundred, under load, never sent it (the
    # client's send queue and nginx's receive queue empty, nginx "waiting for request" in its
    # debug log), and the client timed out with no answer, under Waitress as under Uvicorn.
    # TLS 1.2 sends the tickets within its handshake: 1,200 connections went through.
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    sock = socket.create_connection((HOST, site.https_port), TIMEOUT, (CLIENT, 0))
    try:
        return connect(
            f"wss://{SITE}{path}",
            sock=sock,
            ssl=context,
            additional_headers=headers,
            open_timeout=TIMEOUT,
            close_timeout=TIMEOUT,
        )
    except TimeoutError as error:
        # NOTE: the logs tell whether nginx passed the handshake on and whether the server
        # answered (see the TLS 1.2 note above for the one cause seen so far).
        logs = {"nginx error log": site.error_log, "nginx access log": site.access_log}
        logs["app log"] = site.app_log
        told = "".join(f"\n--- {name}:\n{read_log(log)[-4000:]}" for name, log in logs.items())
        raise AssertionError(f"no answer to the handshake: {error}{told}") from error


def test_websockets_through_nginx_under_uvicorn(site: Site) -> None:
    if site.server == "waitress":
        with pytest.raises(InvalidStatus) as refused:
            _websocket(site)
        assert refused.value.response.status_code == 501
        return
    with _websocket(site, SPOOFED) as ws:
        ws.send("hi")
        assert ws.recv(timeout=TIMEOUT) == f"wss {CLIENT} hi"
        ws.send("close:4001")
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=TIMEOUT)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4001
    with _websocket(site) as ws:
        ws.close(4002, "bye")
    wait_for(
        lambda: "ws: client closed 4002" in read_log(site.app_log),
        "the client's close code in the app",
        site.app_log,
        timeout=TIMEOUT,
    )


@pytest.mark.parametrize("path", ["/ws", "/ws/echo"])
def test_a_websocket_at_the_location_itself_or_below_it(site: Site, path: str) -> None:
    # NOTE: /ws itself, as examples/chat.py and examples/notes/ have it, was nginx's 301 to
    # /ws/ under `location /ws/`, which WebSocket clients do not follow.
    if site.server == "waitress":
        with pytest.raises(InvalidStatus) as refused:
            _websocket(site, path=path)
        assert refused.value.response.status_code == 501
        return
    with _websocket(site, path=path) as ws:
        ws.send("hi")
        assert ws.recv(timeout=TIMEOUT) == f"wss {CLIENT} hi"


def test_the_documented_forwarded_line_leaves_clients_no_say(tmp_path: Path) -> None:
    # NOTE: a Host header nginx passes on, which closes host="..." and adds an element.
    injected = f'{SITE}",for=6.6.6.6;proto=http;host="evil.example'
    with serving_site(tmp_path, "uvicorn", forwarded=True) as rfc_site, rfc_site.client() as client:
        plain = client.get(rfc_site.url("/whoami"), headers=SPOOFED)
        spoofed = client.get(rfc_site.url("/whoami"), headers={"host": injected})
    seen = plain.json()
    assert seen.pop("request_id") != SPOOFED["x-request-id"]
    assert seen == {
        "client": [CLIENT, 0],
        "scheme": "https",
        "host": SITE,
        "url": f"https://{SITE}/whoami",
        "external": f"https://{SITE}/whoami",
        "forwarded_for": SPOOFED["x-forwarded-for"],  # NOTE: passed on, and never read.
        "forwarded": f'for="{CLIENT}";proto=https',
    }
    # NOTE: refused for its Host header alone; Forwarded, all nginx's, is well formed.
    assert (spoofed.status_code, spoofed.text) == (400, "more than one Host header")


@pytest.mark.parametrize("server", ["waitress", "uvicorn"])
def test_behind_nginx_on_a_unix_socket(tmp_path: Path, server: str) -> None:
    # NOTE: the peer has no address there; "*" trusts nginx, the only one that may connect.
    with serving_site(tmp_path, server, uds=True) as uds_site, uds_site.client() as client:
        answer = client.get(uds_site.url("/whoami"), headers=SPOOFED)
        with client.stream("GET", uds_site.url("/events/lines")) as streamed:
            lines = streamed.iter_lines()
            assert [next(lines), next(lines)] == ["line 0", "line 1"]
    seen = answer.json()
    assert seen.pop("request_id") != SPOOFED["x-request-id"]
    assert seen == {
        "client": [CLIENT, 0],
        "scheme": "https",
        "host": SITE,
        "url": f"https://{SITE}/whoami",
        "external": f"https://{SITE}/whoami",
        "forwarded_for": CLIENT,
        "forwarded": None,
    }
    assert uds_site.errors() == []
    assert not (tmp_path / "app.sock").exists(), read_log(uds_site.app_log)
