"""The load of ``soak.py``: one function per kind of request, each checking its own answer.

Every kind takes a ``Target`` and a ``random.Random`` and returns an ``Outcome``: ``wrong`` is
empty when the answer was byte for byte what ``soak_app.py`` must say (or the right status, for
malformed requests), ``fault`` is True when the client misbehaved on purpose and expected no
answer. Normal requests go through ``httpx`` (kept-alive connections, one client per worker);
faults, malformed requests and WebSockets through raw sockets, so the client controls every byte.
Every read has a timeout and every loop a count bound; only ``127.0.0.1`` is spoken to.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import random
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import httpx
from markupsafe import escape

HOST = "127.0.0.1"
TIMEOUT = 15.0
SMALL_LIMIT = 64 * 1024
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
TEXT = "soak text"
ROOT_PATH = "/soak"
PAGE = b"".join(b"soak line %05d\n" % n for n in range(5000))
BLOB = b"".join(hashlib.sha256(b"%d" % n).digest() for n in range(2048))
STREAM_MODES = ("sync", "async", "cancel")
EVIL_HOST = "evil.example"
CROSS_SITE = {"sec-fetch-site": "cross-site", "origin": "https://evil.example"}
# NOTE: soak_app.AFTER_SLOW: a slow after-response callback takes that long.
AFTER_SLOW = 0.5


@dataclass(frozen=True)
class Target:
    """The server under load: its name (``waitress`` or ``uvicorn``) and port."""

    server: str
    port: int

    @property
    def base_url(self) -> str:
        """The server's root URL."""
        return f"http://{HOST}:{self.port}"


@dataclass(frozen=True)
class Outcome:
    """What one request of a kind came to."""

    kind: str
    wrong: str = ""
    fault: bool = False


# -- raw HTTP ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class RawResponse:
    """A response read off a raw socket."""

    status: int
    headers: dict[str, str]
    body: bytes


class Reader:
    """Reads a response (or WebSocket frames) off a socket, with a buffer."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock, self.buffer = sock, b""

    def _more(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        self.buffer += chunk

    def exactly(self, size: int) -> bytes:
        """Return the next ``size`` bytes."""
        while len(self.buffer) < size:
            self._more()
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def until(self, marker: bytes, limit: int = 1 << 20) -> bytes:
        """Return the bytes up to and including ``marker``."""
        while (end := self.buffer.find(marker)) < 0:
            if len(self.buffer) > limit:
                raise ValueError(f"no {marker!r} in {limit} bytes")
            self._more()
        end += len(marker)
        data, self.buffer = self.buffer[:end], self.buffer[end:]
        return data

    def rest(self) -> bytes:
        """Return everything until the server closes."""
        while chunk := self.sock.recv(65536):
            self.buffer += chunk
        data, self.buffer = self.buffer, b""
        return data

    def head(self) -> tuple[int, dict[str, str]]:
        """Read a status line and headers."""
        lines = self.until(b"\r\n\r\n").decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name:
                headers[name.strip().lower()] = value.strip()
        return status, headers

    def response(self) -> RawResponse:
        """Read a whole response: by ``Content-Length``, chunked, or until the server closes."""
        status, headers = self.head()
        return RawResponse(status, headers, self.response_body(headers))

    def response_body(self, headers: dict[str, str]) -> bytes:
        """Read the body of a response whose head is ``headers``."""
        if "chunked" in headers.get("transfer-encoding", ""):
            return self._chunked()
        if "content-length" in headers:
            return self.exactly(int(headers["content-length"]))
        return self.rest()

    def _chunked(self) -> bytes:
        parts = []
        for _ in range(1_000_000):
            size = int(self.until(b"\r\n").split(b";")[0].strip(), 16)
            if size == 0:
                self.until(b"\r\n")
                return b"".join(parts)
            parts.append(self.exactly(size))
            self.exactly(2)
        raise ValueError("too many chunks")


def connect(target: Target) -> socket.socket:
    """Open a raw connection to the server."""
    return socket.create_connection((HOST, target.port), timeout=TIMEOUT)


def request_bytes(
    method: str, path: str, headers: Iterable[tuple[str, str]] = (), body: bytes | None = None
) -> bytes:
    """Return a whole HTTP/1.1 request with ``Connection: close``; ``Content-Length`` is added
    when ``body`` is given and the headers do not set one."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {HOST}", "Connection: close"]
    names = set()
    for name, value in headers:
        lines.append(f"{name}: {value}")
        names.add(name.lower())
    if body is not None and "content-length" not in names:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")


def exchange(target: Target, data: bytes) -> RawResponse:
    """Send ``data`` on a new connection and read one response."""
    with connect(target) as sock:
        # NOTE: a server may answer (413, 400) and close before it reads everything.
        with contextlib.suppress(OSError):
            sock.sendall(data)
        return Reader(sock).response()


# -- expected answers ---------------------------------------------------------------------------


def sha256(data: bytes) -> str:
    """Return the hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def random_text(rng: random.Random, size: int) -> str:
    """Return ``size`` characters mixing ASCII, accents, CJK and an emoji."""
    alphabet = 'abcXYZ019 _-"\\/\t\né€中文😀'
    return "".join(rng.choice(alphabet) for _ in range(size))


def random_json(rng: random.Random, depth: int = 0) -> Any:
    """Return a small random JSON value."""
    pick = rng.randrange(6 if depth < 3 else 4)
    if pick == 0:
        return rng.randrange(-(10**12), 10**12)
    if pick == 1:
        return random_text(rng, rng.randrange(40))
    if pick == 2:
        return rng.choice([True, False, None])
    if pick == 3:
        return rng.random()
    if pick == 4:
        return [random_json(rng, depth + 1) for _ in range(rng.randrange(5))]
    return {random_text(rng, 6): random_json(rng, depth + 1) for _ in range(rng.randrange(5))}


def check_echo(status: int, body: bytes, value: Any, sent: bytes) -> str:
    """Check an ``/echo`` answer against the value and the bytes sent."""
    if status != 200:
        return f"status {status}: {body[:200]!r}"
    answer = json.loads(body)
    if answer != {"value": value, "sha256": sha256(sent)}:
        return f"echo differs: {body[:200]!r}"
    return ""


def multipart_body(rng: random.Random, file_size: int) -> tuple[str, bytes, dict[str, Any], bytes]:
    """Build a form of one text field and one file.

    Returns:
        ``(content_type, body, expected_answer, head)``; ``head`` is the body up to the file's
        content, for uploads cut off midway.
    """
    boundary = f"soak{rng.getrandbits(64):016x}"
    note = random_text(rng, rng.randrange(1, 200))
    data = rng.randbytes(file_size)
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="note"\r\n\r\n{note}\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="f.bin"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    body = head + data + f"\r\n--{boundary}--\r\n".encode()
    file_info = {"filename": "f.bin", "size": file_size, "sha256": sha256(data)}
    expected = {"fields": {"note": note}, "files": {"file": file_info}}
    return f"multipart/form-data; boundary={boundary}", body, expected, head


def sse_events(count: int) -> bytes:
    """The body of a whole ``/sse`` stream of ``count`` events."""
    return b"".join(f"data: {n}\n\n".encode() for n in range(count))


# -- normal requests (httpx, kept alive) -------------------------------------------------------


def cors_missing(response: httpx.Response) -> str:
    """Say so when an answer lacks CORS's ``*`` (every answer has it)."""
    if response.headers.get("access-control-allow-origin") != "*":
        return f" (no CORS '*': {response.headers.get('access-control-allow-origin')!r})"
    return ""


def get_text(target: Target, rng: random.Random, http: httpx.Client) -> Outcome:
    """GET ``/text?n=``: plain text from a ``def`` handler (gzipped when it is long)."""
    n = rng.randrange(1, 2000)
    response = http.get(f"/text?n={n}")
    right = response.status_code == 200 and response.content == (TEXT * n).encode()
    wrong = "" if right else f"/text?n={n}: {response.status_code}"
    return Outcome("get text", wrong + cors_missing(response))


def get_json(target: Target, rng: random.Random, http: httpx.Client) -> Outcome:
    """GET ``/json?n=``: JSON from an ``async def`` handler."""
    n = rng.randrange(1_000_000)
    response = http.get(f"/json?n={n}")
    right = response.status_code == 200 and response.json() == {"n": n, "square": n * n}
    return Outcome("get json", "" if right else f"/json?n={n}: {response.content[:200]!r}")


def post_echo(target: Target, rng: random.Random, http: httpx.Client) -> Outcome:
    """POST a random JSON value to ``/echo/sync`` or ``/echo/async``."""
    value = random_json(rng)
    sent = json.dumps(value, ensure_ascii=rng.random() < 0.5).encode()
    path = rng.choice(["/echo/sync", "/echo/async"])
    response = http.post(path, content=sent, headers={"content-type": "application/json"})
    wrong = check_echo(response.status_code, response.content, value, sent)
    return Outcome("post json echo", wrong)


def post_upload(target: Target, rng: random.Random, http: httpx.Client) -> Outcome:
    """POST a form with a file (some above the spool threshold) to an upload handler."""
    size = rng.choice([0, 100, 5000, 20_000, 100_000])
    content_type, body, expected, _ = multipart_body(rng, size)
    path = rng.choice(["/upload/sync", "/upload/async"])
    response = http.post(path, content=body, headers={"content-type": content_type})
    right = response.status_code == 200 and response.json() == expected
    return Outcome("upload", "" if right else f"{path}: {response.content[:200]!r}")


def get_sse(target: Target, rng: random.Random, http: httpx.Client) -> Outcome:
    """Read a short ``/sse`` stream to its end."""
    count = rng.randrange(1, 8)
    response = http.get(f"/sse?count={count}&every_ms=1")
    right = response.status_code == 200 and response.content == sse_events(count)
    return Outcome("sse whole", "" if right else f"/sse: {response.content[:200]!r}")


def server_error(target: Target, rng: random.Random, http: httpx.Client) -> Outcome:
    """GET a handler that fails (its own ``CancelledError``, a second Content-Type): the app's
    500 handler answers, with the class of the error."""
    path, error = rng.choice(
        [
            ("/cancelled/async", "CancelledError"),
            ("/cancelled/sync", "CancelledError"),
            ("/double-type", "ValueError"),
        ]
    )
    response = http.get(path)
    right = response.status_code == 500 and response.json() == {"soak": "error", "type": error}
    wrong = "" if right else f"{path}: {response.status_code} {response.content[:200]!r}"
    return Outcome(f"500 {path}", wrong + cors_missing(response))


def reset_content(target: Target, rng: random.Random, http: httpx.Client) -> Outcome:
    """GET ``/reset``: 205 with no content, though the handler gave a body (GZip on)."""
    response = http.get("/reset", headers={"accept-encoding": "gzip"})
    head = (response.status_code, response.headers.get("content-length"), response.content)
    right = head == (205, "0", b"") and "content-encoding" not in response.headers
    return Outcome("205 no content", "" if right else f"/reset: {head} {response.headers}")


def whoami(target: Target, rng: random.Random, http: httpx.Client) -> Outcome:
    """GET ``/soak/whoami`` with ``X-Forwarded-For``: ProxyHeaders trusts 127.0.0.1."""
    client = f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
    response = http.get(f"{ROOT_PATH}/whoami", headers={"x-forwarded-for": client})
    expected = {"client": client, "root_path": ROOT_PATH}
    right = response.status_code == 200 and response.json() == expected
    return Outcome("proxied, root path", "" if right else f"/whoami: {response.content[:200]!r}")


def template_page(target: Target, rng: random.Random, http: httpx.Client) -> Outcome:
    """GET ``/page?name=``: the compiled template, the name escaped."""
    name = random_text(rng, rng.randrange(1, 40)) + rng.choice(["", "<b>", "&amp;", "'\""])
    response = http.get("/page", params={"name": name})
    expected = f"<p>Hello {escape(name)}</p>".encode()
    right = response.status_code == 200 and response.content == expected
    return Outcome("template", "" if right else f"/page: {response.content[:200]!r}")


def static_file(target: Target, rng: random.Random, http: httpx.Client) -> Outcome:
    """GET a whole static file, gzipped or not, under the root path or not."""
    name, content = rng.choice([("page.txt", PAGE), ("blob.bin", BLOB)])
    gzip = rng.random() < 0.5
    prefix = rng.choice(["", ROOT_PATH])
    response = http.get(
        f"{prefix}/static/{name}", headers={"accept-encoding": "gzip" if gzip else "identity"}
    )
    wrong = ""
    if response.status_code != 200 or response.content != content:
        wrong = f"{name}: {response.status_code} {len(response.content)} bytes"
    elif gzip and name == "page.txt" and response.headers.get("content-encoding") != "gzip":
        wrong = f"{name}: not gzipped: {response.headers}"
    return Outcome("static whole", wrong + cors_missing(response))


def static_range(target: Target, rng: random.Random, http: httpx.Client) -> Outcome:
    """GET a byte range of a static file (GZip on): 206, its bytes, Vary: Accept-Encoding."""
    name, content = rng.choice([("page.txt", PAGE), ("blob.bin", BLOB)])
    first = rng.randrange(len(content))
    last = min(len(content) - 1, first + rng.randrange(1, 20_000))
    response = http.get(
        f"/static/{name}", headers={"range": f"bytes={first}-{last}", "accept-encoding": "gzip"}
    )
    expected_range = f"bytes {first}-{last}/{len(content)}"
    right = (
        response.status_code == 206
        and response.content == content[first : last + 1]
        and response.headers.get("content-range") == expected_range
        # NOTE: GZip leaves application/octet-stream alone, so only the text varies.
        and (name != "page.txt" or "accept-encoding" in response.headers.get("vary", "").lower())
        and "content-encoding" not in response.headers
    )
    wrong = "" if right else f"{name} {first}-{last}: {response.status_code} {response.headers}"
    return Outcome("static range 206", wrong)


def static_refused(target: Target, rng: random.Random, http: httpx.Client) -> Outcome:
    """GET a static file under a failing condition (412), or the named pipe (404, at once)."""
    case = rng.choice(["if-match", "if-unmodified-since", "pipe"])
    if case == "pipe":
        response = http.get("/static/pipe")
        right = response.status_code == 404
    else:
        value = '"soak-other"' if case == "if-match" else "Mon, 01 Jan 2001 00:00:00 GMT"
        response = http.get("/static/page.txt", headers={case: value})
        right = response.status_code == 412 and response.content == b""
    wrong = "" if right else f"{case}: {response.status_code} {response.content[:100]!r}"
    return Outcome(f"static {case}", wrong)


def stream_fails(target: Target, rng: random.Random, http: httpx.Client) -> Outcome:
    """GET a stream that fails midway: its chunks, then a cut (no last chunk)."""
    mode, after = rng.choice(STREAM_MODES), rng.randrange(0, 5)
    kind = f"stream fails ({mode})"
    with connect(target) as sock:
        sock.sendall(request_bytes("GET", f"/stream/fail?mode={mode}&after={after}"))
        reader = Reader(sock)
        status, headers = reader.head()
        if status != 200 or "chunked" not in headers.get("transfer-encoding", ""):
            return Outcome(kind, f"{status} {headers}")
        chunks: list[bytes] = []
        try:
            for _ in range(after + 1):
                size = int(reader.until(b"\r\n").split(b";")[0].strip(), 16)
                if size == 0:
                    return Outcome(kind, f"a whole response after {chunks}")
                chunks.append(reader.exactly(size))
                reader.exactly(2)
        except ConnectionError:
            pass
    expected = [b"chunk %d\n" % n for n in range(after)]
    return Outcome(kind, "" if chunks == expected else f"chunks {chunks} for {after}")


# -- WebSockets (raw frames) ---------------------------------------------------------------------


def ws_frame(opcode: int, payload: bytes) -> bytes:
    """Return one masked client frame (RFC 6455 section 5.2)."""
    mask = os.urandom(4)
    size = len(payload)
    if size < 126:
        head = bytes([0x80 | opcode, 0x80 | size])
    else:
        head = bytes([0x80 | opcode, 0x80 | 126]) + size.to_bytes(2, "big")
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def ws_read(reader: Reader) -> tuple[int, bytes]:
    """Read one unmasked server frame: ``(opcode, payload)``."""
    first, second = reader.exactly(2)
    size = second & 0x7F
    if size == 126:
        size = int.from_bytes(reader.exactly(2), "big")
    elif size == 127:
        size = int.from_bytes(reader.exactly(8), "big")
    return first & 0x0F, reader.exactly(size)


def ws_handshake(
    target: Target, sock: socket.socket, path: str = "/ws", extra: Iterable[tuple[str, str]] = ()
) -> tuple[Reader, RawResponse | None]:
    """Send a handshake; return the reader and, when the server refused it, its answer."""
    key = base64.b64encode(os.urandom(16)).decode()
    headers = [
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", key),
        ("Sec-WebSocket-Version", "13"),
        *extra,
    ]
    lines = [f"GET {path} HTTP/1.1", f"Host: {HOST}", *(f"{n}: {v}" for n, v in headers)]
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    reader = Reader(sock)
    status, answer_headers = reader.head()
    if status != 101:
        length = int(answer_headers.get("content-length", "0"))
        return reader, RawResponse(status, answer_headers, reader.exactly(length))
    accept = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
    if answer_headers.get("sec-websocket-accept") != accept:
        raise ValueError("wrong Sec-WebSocket-Accept")
    return reader, None


def _ws_refused(kind: str, refused: RawResponse, expected: int = 501) -> Outcome:
    # NOTE: under WSGI a WebSocket route answers 501, which is the right answer there.
    right = refused.status == expected
    return Outcome(kind, "" if right else f"/ws handshake: {refused.status} {refused.body!r}")


def websocket_echo(target: Target, rng: random.Random, http: httpx.Client) -> Outcome:
    """Echo a few messages, then close properly."""
    with connect(target) as sock:
        reader, refused = ws_handshake(target, sock)
        if refused is not None:
            return _ws_refused("websocket echo", refused)
        for _ in range(rng.randrange(1, 4)):
            text = random_text(rng, rng.randrange(1, 300))
            sock.sendall(ws_frame(0x1, text.encode()))
            opcode, payload = ws_read(reader)
            if (opcode, payload) != (0x1, text.encode()):
                return Outcome("websocket echo", f"ws echo differs: {opcode} {payload[:100]!r}")
        sock.sendall(ws_frame(0x8, (1000).to_bytes(2, "big")))
        opcode, _ = ws_read(reader)
    return Outcome("websocket echo", "" if opcode == 0x8 else f"no close frame: {opcode}")


def websocket_vanish(target: Target, rng: random.Random, http: httpx.Client) -> Outcome:
    """Connect, maybe send one message, then drop the socket without a close frame."""
    with connect(target) as sock:
        _, refused = ws_handshake(target, sock)
        if refused is not None:
            return _ws_refused("websocket vanish", refused)
        if rng.random() < 0.5:
            sock.sendall(ws_frame(0x1, b"going away"))
    return Outcome("websocket vanish", fault=True)


def websocket_json(target: Target, rng: random.Random, http: httpx.Client) -> Outcome:
    """Send JSON values to ``/ws/json`` (``iter_json()``), each answered ``{"echo": value}``;
    a fifth end with a message that is not JSON, which the server closes with 1007."""
    kind = "websocket json"
    with connect(target) as sock:
        reader, refused = ws_handshake(target, sock, "/ws/json")
        if refused is not None:
            return _ws_refused(kind, refused)
        for _ in range(rng.randrange(1, 4)):
            value = random_json(rng)
            sock.sendall(ws_frame(0x1, json.dumps(value).encode()))
            opcode, payload = ws_read(reader)
            if opcode != 0x1 or json.loads(payload) != {"echo": value}:
                return Outcome(kind, f"ws json differs: {opcode} {payload[:100]!r}")
        invalid = rng.random() < 0.2
        sent = b'{"not": json' if invalid else (1000).to_bytes(2, "big")
        sock.sendall(ws_frame(0x1 if invalid else 0x8, sent))
        opcode, payload = ws_read(reader)
        if invalid:
            kind = "websocket json, invalid"
            if (opcode, payload[:2]) != (0x8, (1007).to_bytes(2, "big")):
                return Outcome(kind, f"no close 1007: {opcode} {payload[:100]!r}")
            sock.sendall(ws_frame(0x8, payload[:2]))
    return Outcome(kind, "" if opcode == 0x8 else f"no close frame: {opcode}")


def websocket_cross_site(target: Target, rng: random.Random, http: httpx.Client) -> Outcome:
    """A handshake from another site's page: CSRF refuses it with 403 (under Waitress the
    route answers 501 first, as to every handshake)."""
    if target.server == "waitress":
        kind, expected = "websocket cross-site 501", 501
    else:
        kind, expected = "websocket cross-site 403", 403
    with connect(target) as sock:
        _, refused = ws_handshake(target, sock, rng.choice(["/ws", "/ws/json"]), CROSS_SITE.items())
    if refused is None:
        return Outcome(kind, "the handshake was accepted")
    return _ws_refused(kind, refused, expected)


# -- today's plugins and after-response callbacks ------------------------------------------------


def wrong_host(target: Target, rng: random.Random, http: httpx.Client) -> Outcome:
    """A request for a host TrustedHosts doesn't list: 400, before any route or flow."""
    path = rng.choice(["/text", "/json?n=3", "/static/page.txt", "/nowhere", f"{ROOT_PATH}/whoami"])
    host = rng.choice([EVIL_HOST, f"{EVIL_HOST}:8080", "127.0.0.2", "localhost.evil.example"])
    response = http.get(path, headers={"host": host})
    right = (response.status_code, response.text) == (400, "host not allowed")
    return Outcome("wrong host 400", "" if right else f"{host} {path}: {response.status_code}")


def csrf_post(target: Target, rng: random.Random, http: httpx.Client) -> Outcome:
    """POST JSON from the app's own page (200, echoed) or from another site's (403)."""
    value = random_json(rng)
    sent = json.dumps(value).encode()
    case = rng.choice(["same-origin", "own origin", "cross-site", "origin only"])
    headers = {
        "same-origin": {"sec-fetch-site": "same-origin", "origin": target.base_url},
        "own origin": {"origin": target.base_url},
        "cross-site": CROSS_SITE,
        "origin only": {"origin": CROSS_SITE["origin"]},
    }[case]
    path = rng.choice(["/echo/sync", "/echo/async"])
    response = http.post(
        path, content=sent, headers={**headers, "content-type": "application/json"}
    )
    if case in ("same-origin", "own origin"):
        return Outcome(
            f"csrf {case} 200", check_echo(response.status_code, response.content, value, sent)
        )
    right = response.status_code == 403 and "set-cookie" not in response.headers
    wrong = "" if right else f"{path}: {response.status_code} {response.content[:100]!r}"
    return Outcome(f"csrf {case} 403", wrong)


def login_flash(target: Target, rng: random.Random, http: httpx.Client) -> Outcome:
    """Log in (a form, from the app's own page), follow the 303 to ``/me`` (built with
    ``url_for(_query=)``): the session's user and the flashed welcome, once; then ``/me``
    again with ``?visit=`` not a number (``query.get(type=int)``'s default, no flash left).
    A fifth try it from another site's page: 403, and no cookie set."""
    name = random_text(rng, rng.randrange(1, 30))
    visit = rng.randrange(1_000_000)
    cross = rng.random() < 0.2
    headers = CROSS_SITE if cross else {"sec-fetch-site": "same-origin"}
    with httpx.Client(base_url=target.base_url, timeout=TIMEOUT) as own:
        answer = own.post(f"/login?visit={visit}", data={"name": name}, headers=headers)
        if cross:
            right = answer.status_code == 403 and not own.cookies
            return Outcome(
                "login cross-site 403", "" if right else f"{answer.status_code} {own.cookies}"
            )
        location = answer.headers.get("location", "")
        if answer.status_code != 303 or not location.endswith(f"/me?visit={visit}"):
            return Outcome("login, flash", f"login: {answer.status_code} {location!r}")
        first = own.get(location).json()
        flashed = {"user": name, "visit": visit, "flashes": [["success", f"welcome {name}"]]}
        if first != flashed:
            return Outcome("login, flash", f"{location}: {first}")
        again = own.get("/me?visit=x").json()
        right = again == {"user": name, "visit": -1, "flashes": []}
    return Outcome("login, flash", "" if right else f"/me again: {again}")


def after_response(target: Target, rng: random.Random, http: httpx.Client) -> Outcome:
    """GET ``/after`` over a connection that ends with the answer (HTTP/1.0, or HTTP/1.1 with
    ``Connection: close``), whole or streamed, its callback quick, slow or failing, ``def`` or
    ``async def``: the answer is right, and the connection closes without waiting for the
    callback (a slow one sleeps AFTER_SLOW)."""
    mode = rng.choice(["quick", "quick", "slow", "fail"])
    colour, stream = rng.choice(["sync", "async"]), rng.choice(["0", "1"])
    n = rng.randrange(1000)
    path = f"/after?mode={mode}&colour={colour}&stream={stream}&n={n}"
    version = rng.choice(["1.0", "1.1"])
    if version == "1.0":
        # NOTE: no Host: TrustedHosts checks the address microweb serve listens on.
        data = f"GET {path} HTTP/1.0\r\n\r\n".encode()
    else:
        data = request_bytes("GET", path)
    kind = f"after-response {mode}"
    with connect(target) as sock:
        sock.sendall(data)
        reader = Reader(sock)
        status, headers = reader.head()
        headed = time.monotonic()
        # NOTE: both servers under microweb serve end it with the connection (plain Uvicorn
        # with httptools sends it chunked even to an HTTP/1.0 client: serving.md).
        chunked = "chunked" in headers.get("transfer-encoding", "")
        if version == "1.0" and chunked:
            return Outcome(kind, f"HTTP/1.0 {path}: chunked for an HTTP/1.0 client")
        try:
            body = reader.response_body(headers)
            rest = reader.rest()
        except ConnectionError as exc:
            return Outcome(kind, f"HTTP/{version} {path}: {exc}")
        waited = time.monotonic() - headed
    if (status, body, rest) != (200, b"after %d" % n, b""):
        return Outcome(kind, f"HTTP/{version} {path}: {status} {body[:100]!r} {rest[:100]!r}")
    if waited > AFTER_SLOW / 2:
        return Outcome(kind, f"HTTP/{version} {path}: closed {waited:.2f} s after the head")
    return Outcome(kind)


# -- faults: clients that leave -----------------------------------------------------------------


def upload_cut(target: Target, rng: random.Random, http: httpx.Client) -> Outcome:
    """Send the head of a big form and part of its file, then close the socket."""
    content_type, body, _, head = multipart_body(rng, rng.choice([30_000, 300_000]))
    cut = rng.randrange(len(head), len(body) - 10)
    data = request_bytes(
        "POST", rng.choice(["/upload/sync", "/upload/async"]), [("Content-Type", content_type)]
    )
    data = data.replace(b"\r\n\r\n", f"\r\nContent-Length: {len(body)}\r\n\r\n".encode(), 1)
    with connect(target) as sock:
        sock.sendall(data + body[:cut])
        time.sleep(rng.random() * 0.05)
    return Outcome("upload cut off", fault=True)


def sse_drop(target: Target, rng: random.Random, http: httpx.Client) -> Outcome:
    """Start a long ``/sse`` stream, read a few events, then close the socket."""
    with connect(target) as sock:
        sock.sendall(request_bytes("GET", "/sse?count=1000&every_ms=10"))
        reader = Reader(sock)
        status, _ = reader.head()
        if status != 200:
            return Outcome("sse dropped", f"/sse: status {status}")
        for _ in range(rng.randrange(1, 4)):
            reader.until(b"\n\n")
    return Outcome("sse dropped", fault=True)


def slow_drip(target: Target, rng: random.Random, http: httpx.Client) -> Outcome:
    """Send a JSON body a few bytes at a time with pauses; a third of them leave midway."""
    value = random_json(rng)
    sent = json.dumps(value).encode()
    data = request_bytes("POST", "/echo/sync", [("Content-Type", "application/json")], sent)
    leave_at = len(data) // 2 if rng.random() < 1 / 3 else len(data) + 1
    deadline = time.monotonic() + 2.0
    with connect(target) as sock:
        offset = 0
        while offset < len(data) and time.monotonic() < deadline:
            if offset >= leave_at:
                return Outcome("slow drip", fault=True)
            step = rng.randrange(1, 9)
            sock.sendall(data[offset : offset + step])
            offset += step
            time.sleep(rng.random() * 0.03)
        sock.sendall(data[offset:])
        answer = Reader(sock).response()
    return Outcome("slow drip", check_echo(answer.status, answer.body, value, sent))


# -- malformed requests: the right 4xx ----------------------------------------------------------

JSON_TYPE = ("Content-Type", "application/json")


def _malformed_cases(rng: random.Random) -> list[tuple[str, int, bytes]]:
    boundary = "soakbad"
    form_type = ("Content-Type", f"multipart/form-data; boundary={boundary}")
    truncated = f'--{boundary}\r\nContent-Disposition: form-data; name="a"\r\n\r\nabc'.encode()
    charset = rng.choice(["nope", "rot13", "undefined", "base64", "utf-99"])
    bad_part = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="a"\r\n'
        f"Content-Type: text/plain; charset={charset}\r\n\r\nabc\r\n--{boundary}--\r\n"
    ).encode()
    text_type = ("Content-Type", f"text/plain; charset={charset}")
    bad_length = ("Content-Length", "12abc")
    oversized = b'"' + b"x" * rng.randrange(SMALL_LIMIT, 3 * SMALL_LIMIT) + b'"'
    no_boundary = ("Content-Type", "multipart/form-data")
    return [
        ("bad content-length", 400, request_bytes("POST", "/echo/sync", [bad_length], b"{}")),
        ("invalid json", 400, request_bytes("POST", "/echo/sync", [JSON_TYPE], b'{"a": ')),
        ("invalid json", 400, request_bytes("POST", "/echo/async", [JSON_TYPE], b"[1, 2,]")),
        ("bad multipart", 400, request_bytes("POST", "/upload/sync", [form_type], truncated)),
        ("bad multipart", 400, request_bytes("POST", "/upload/async", [no_boundary], b"--x")),
        ("bad charset", 400, request_bytes("POST", "/text", [text_type], "café".encode())),
        ("bad charset", 400, request_bytes("POST", "/upload/sync", [form_type], bad_part)),
        ("bad utf-8 path", 400, request_bytes("GET", "/text%FF%FE")),
        ("oversized body", 413, request_bytes("POST", "/small", [JSON_TYPE], oversized)),
    ]


def malformed(target: Target, rng: random.Random, http: httpx.Client) -> Outcome:
    """Send one malformed request and expect the right 4xx."""
    kind, expected, data = rng.choice(_malformed_cases(rng))
    answer = exchange(target, data)
    if answer.status != expected:
        return Outcome(f"malformed: {kind}", f"{expected} expected, got {answer.status}")
    return Outcome(f"malformed: {kind}")


Kind = Callable[[Target, random.Random, httpx.Client], Outcome]

# NOTE: weights: mostly normal requests, every fault and malformed kind often enough to count.
MIX: list[tuple[Kind, int]] = [
    (get_text, 10),
    (get_json, 10),
    (post_echo, 10),
    (post_upload, 6),
    (get_sse, 4),
    (websocket_echo, 3),
    (upload_cut, 3),
    (sse_drop, 3),
    (websocket_vanish, 3),
    (slow_drip, 2),
    (malformed, 8),
    # NOTE: the paths added since (stream errors, own cancellations, files, plugins).
    (static_file, 4),
    (static_range, 3),
    (static_refused, 2),
    (template_page, 3),
    (whoami, 3),
    (reset_content, 1),
    (server_error, 2),
    (stream_fails, 2),
    # NOTE: TrustedHosts, CSRF, Sessions with flashes, a lifespan's pool, after-response
    # callbacks, iter_json().
    (wrong_host, 2),
    (csrf_post, 3),
    (login_flash, 2),
    (after_response, 3),
    (websocket_json, 2),
    (websocket_cross_site, 1),
]
