"""Random sequences of client actions on one WebSocket, in-process and through real Uvicorn.

A model says what each action gets back (an echo, or the close a bad message earns) and how
the handler ends (its own close, or the ``WebSocketDisconnect`` that ended it, then its
``finally``). Each sequence runs against the test client and against ``tests/ws_seq_app.py``
served by Uvicorn under both of its ``websockets`` implementations and by ``microweb serve``
(its flow-controlled protocol), spoken to with the ``websockets`` client; every one of them
must match the model.
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from servers import HOST, Uvicorn, free_port, run_uvicorn, running
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect
from ws_seq_app import MAX_MESSAGE, app

from microweb import WebSocketDisconnect
from microweb.testing import TestClient, WebSocketSession

pytestmark = pytest.mark.servers

TIMEOUT = 5.0
Action = tuple[Any, ...]
Seen = list[tuple[str, Any]]

# NOTE: text and values that no command of the app's starts with.
_PLAIN = st.text(max_size=12).filter(lambda text: not text.startswith("!"))
_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | _PLAIN,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_PLAIN, inner, max_size=3),
    max_leaves=6,
)
ACTIONS = st.lists(
    st.one_of(
        st.tuples(st.just("text"), _PLAIN),
        st.tuples(st.just("bytes"), st.binary(max_size=12).filter(lambda data: data != b"!text")),
        st.tuples(st.just("json"), _JSON),
        st.tuples(st.just("mode"), st.sampled_from(["text", "bytes", "json"])),
        st.tuples(st.just("bad_json"), st.booleans()),
        st.tuples(st.just("too_big")),
        st.tuples(st.just("server_close"), st.sampled_from([1000, 1001, 1003, 1008, 3000, 4999])),
        st.tuples(
            st.sampled_from(["many", "end"]), st.integers(0, 40), st.sampled_from([0, 10, 4000])
        ),
        st.tuples(st.just("client_close"), st.sampled_from([1000, 1001, 3000, 4000])),
        st.tuples(st.just("abrupt")),
    ),
    max_size=8,
)


@dataclass
class Model:
    """What the app does, as the module's docstring of ``ws_seq_app`` says."""

    mode: str = "text"
    ended: bool = False
    log: list[list[object]] = field(default_factory=list)

    def steps(self, action: Action) -> list[tuple[str, Any]]:
        """The messages ``action`` sends, as ``(kind, data)``, in the app's present mode."""
        kind = action[0]
        back = [] if self.mode == "text" else [_BACK_TO_TEXT[self.mode]]
        if kind == "mode":
            return [*back, ("text", f"!mode:{action[1]}")]
        if kind == "server_close":
            return [*back, ("text", f"!close:{action[1]}")]
        if kind in ("many", "end"):
            return [*back, ("text", f"!{kind}:{action[1]}:{action[2]}")]
        if kind == "text":
            return [("text", json.dumps(action[1]) if self.mode == "json" else action[1])]
        if kind == "bytes":
            data = json.dumps(action[1].hex()).encode() if self.mode == "json" else action[1]
            return [("bytes", data)]
        if kind == "json":
            return [("text", json.dumps(action[1]))]
        if kind == "bad_json":
            return [("text", "{")] if action[1] else [("bytes", b"{")]
        assert kind == "too_big"
        return [("text", "x" * (MAX_MESSAGE + 1))]

    def answers(self, kind: str, data: Any) -> list[tuple[str, Any]]:
        """What the app answers to one message: its messages, then its close if it closes."""
        if self.mode == "text" and kind == "text" and data.startswith(("!many:", "!end:")):
            command, count, size = data.split(":")
            sent = [("text", f"m{index}:" + "x" * int(size)) for index in range(int(count))]
            if command == "!many":
                return [*sent, ("text", "ok")]
            self.log += [["returned"], ["finally"]]
            self.ended = True
            return [*sent, ("closed", (1000, ""))]
        return [self.answer(kind, data)]

    def answer(self, kind: str, data: Any) -> tuple[str, Any]:
        """What the app answers to one message: ``(kind, value)``, or ``("closed", (code,
        reason))``."""
        size = len(data.encode() if isinstance(data, str) else data)
        if size > MAX_MESSAGE:
            return self._fails(1009, f"message larger than {MAX_MESSAGE} bytes")
        if self.mode == "json":
            # NOTE: json.loads() skips the BOM of bytes (not of text); receive_json() neither.
            if data.startswith("\ufeff" if isinstance(data, str) else b"\xef\xbb\xbf"):
                return self._fails(1007, "JSON message starts with a byte order mark")
            try:
                value = json.loads(data)
            except ValueError:
                return self._fails(1007, "invalid JSON message")
            if value == "!text":
                self.mode = "text"
                return ("json", "ok")
            return ("json", {"json": value})
        if kind != self.mode:
            return self._fails(1003, f"expected a {_KINDS[self.mode]} message")
        if kind == "bytes":
            if data == b"!text":
                self.mode = "text"
                return ("bytes", b"ok")
            return ("bytes", b"b:" + data)
        if data.startswith("!mode:"):
            self.mode = data[len("!mode:") :]
            return ("text", "ok")
        if data.startswith("!close:"):
            code = int(data[len("!close:") :])
            self.log += [["closed", code], ["finally"]]
            self.ended = True
            return ("closed", (code, ""))
        return ("text", "t:" + data)

    def _fails(self, code: int, reason: str) -> tuple[str, Any]:
        self.log += [["disconnect", code], ["finally"]]
        self.ended = True
        return ("closed", (code, reason))


# NOTE: the kind of message each mode reads, as the app's 1003 close names it.
_KINDS = {"text": "text", "bytes": "binary"}
# NOTE: what brings the app back to text mode from the others.
_BACK_TO_TEXT = {"bytes": ("bytes", b"!text"), "json": ("text", json.dumps("!text"))}


class Client(Protocol):
    """One connection, as each target speaks it."""

    def send(self, kind: str, data: Any) -> None: ...
    def receive(self, kind: str) -> tuple[str, Any]: ...
    def close(self, code: int) -> None: ...
    def vanish(self) -> None: ...
    def log(self) -> list[list[object]]: ...


def run(
    actions: list[Action], client: Client, dropped: int = 1006
) -> tuple[Seen, list[list[object]]]:
    """Play ``actions`` on ``client``; return what it saw, checked against the model, and the
    handler's log that the model expects."""
    model = Model()
    seen: Seen = []
    expected: Seen = []
    for action in actions:
        if model.ended:
            break
        if action[0] in ("client_close", "abrupt"):
            code = action[1] if action[0] == "client_close" else dropped
            if action[0] == "client_close":
                client.close(code)
            else:
                client.vanish()
            model.log += [["disconnect", code], ["finally"]]
            model.ended = True
            break
        for kind, data in model.steps(action):
            answers = model.answers(kind, data)
            client.send(kind, data)
            for answer in answers:
                expected.append(answer)
                seen.append(client.receive(answer[0]))
            if model.ended:
                break
    if not model.ended:
        client.close(1000)
        model.log += [["disconnect", 1000], ["finally"]]
    assert seen == expected, (actions, seen, expected)
    return seen, model.log


class InProcess:
    """The test client's WebSocket session."""

    def __init__(self, client: TestClient, conn: str) -> None:
        self.client, self.conn = client, conn
        self.session: WebSocketSession = client.websocket_connect(f"/seq/{conn}")

    def send(self, kind: str, data: Any) -> None:
        if kind == "bytes":
            self.session.send_bytes(data)
        else:
            self.session.send_text(data)

    def receive(self, kind: str) -> tuple[str, Any]:
        try:
            if kind == "bytes":
                return ("bytes", self.session.receive_bytes())
            text = self.session.receive_text()
        except WebSocketDisconnect as exc:
            return ("closed", (exc.code, exc.reason))
        return ("json", json.loads(text)) if kind == "json" else ("text", text)

    def close(self, code: int) -> None:
        self.session.close(code)

    def vanish(self) -> None:
        # NOTE: the test client has no TCP connection to drop: 1006 is what a server reports.
        self.session.close(1006)

    def log(self) -> list[list[object]]:
        self.session.close()  # NOTE: ended already: waits for nothing.
        answer: list[list[object]] = self.client.get(f"/seq-log/{self.conn}").json()
        return answer


class OverTheWire:
    """A ``websockets`` client connected to a real server."""

    def __init__(self, server: Uvicorn, conn: str, ws: ClientConnection) -> None:
        self.server, self.conn, self.ws = server, conn, ws

    def send(self, kind: str, data: Any) -> None:
        self.ws.send(data)

    def receive(self, kind: str) -> tuple[str, Any]:
        try:
            message = self.ws.recv(timeout=TIMEOUT)
        except ConnectionClosed as closed:
            rcvd = closed.rcvd
            return ("closed", (rcvd.code, rcvd.reason) if rcvd is not None else None)
        if kind == "json":
            return ("json", json.loads(message))
        return ("bytes" if isinstance(message, bytes) else "text", message)

    def close(self, code: int) -> None:
        self.ws.close(code)

    def vanish(self) -> None:
        self.ws.close_socket()

    def log(self) -> list[list[object]]:
        self.ws.close_socket()
        deadline = time.monotonic() + TIMEOUT
        while True:
            answer: list[list[object]] = httpx.get(
                f"{self.server.http_url}/seq-log/{self.conn}", timeout=TIMEOUT
            ).json()
            if answer[-1:] == [["finally"]] or time.monotonic() > deadline:
                return answer
            time.sleep(0.01)


# NOTE: the close code the handler sees when the client drops the TCP connection without a
# close frame. SPEC: RFC 6455 7.1.5, 7.4.1: 1006; 1005 is a close frame that had no code.
# Uvicorn's sans-I/O implementation reports 1005 (0.55 still); microweb serve's protocol, 1006.
DROPPED = {"websockets-sansio": 1005, "websockets": 1006, "microweb serve": 1006}


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Uvicorn]]:
    """``ws_seq_app`` under Uvicorn's two ``websockets`` implementations and ``microweb serve``."""
    app_factory = "ws_seq_app:app.as_asgi"
    sansio_options = ["--ws", "websockets-sansio"]
    with (
        run_uvicorn(app_factory, tmp_path_factory.mktemp("sansio"), sansio_options) as sansio,
        run_uvicorn(
            app_factory, tmp_path_factory.mktemp("legacy"), ["--ws", "websockets"]
        ) as legacy,
    ):
        served = Uvicorn(free_port(), tmp_path_factory.mktemp("served") / "serve.log")
        command = [
            *(sys.executable, "-m", "microweb", "serve", "ws_seq_app", "--server", "uvicorn"),
            *("--host", HOST, "--port", str(served.port)),
        ]
        with running(command, port=served.port, log=served.log):
            yield {"websockets-sansio": sansio, "websockets": legacy, "microweb serve": served}


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(actions=ACTIONS)
def test_a_sequence_ends_alike_in_process_and_through_uvicorn(
    servers: dict[str, Uvicorn], actions: list[Action]
) -> None:
    with TestClient(app, interface="asgi") as client:
        in_process = InProcess(client, uuid.uuid4().hex)
        seen, expected_log = run(actions, in_process)
        assert in_process.log() == expected_log, actions
    for name, server in servers.items():
        conn = uuid.uuid4().hex
        url = f"{server.ws_url}/seq/{conn}"
        with connect(url, proxy=None, open_timeout=TIMEOUT, close_timeout=TIMEOUT) as ws:
            over_the_wire = OverTheWire(server, conn, ws)
            seen_there, log = run(actions, over_the_wire, DROPPED[name])
            assert seen_there == seen, name
            assert over_the_wire.log() == log, (name, actions)
    for name, server in servers.items():
        log = server.log_text()
        assert "Traceback" not in log and "ERROR" not in log, (name, log)


def test_a_client_that_drops_the_connection_ends_the_handler_with_1006_under_microweb_serve(
    servers: dict[str, Uvicorn],
) -> None:
    # SPEC: RFC 6455 7.1.5: no close frame received, 1006. The handler saw 1005, the code of a
    # clean close without a code, as under Uvicorn's own sans-I/O protocol.
    server, conn = servers["microweb serve"], uuid.uuid4().hex
    with connect(f"{server.ws_url}/seq/{conn}", proxy=None, open_timeout=TIMEOUT) as ws:
        over_the_wire = OverTheWire(server, conn, ws)
        ws.send("still here")
        assert ws.recv(timeout=TIMEOUT) == "t:still here"
        over_the_wire.vanish()
        assert over_the_wire.log() == [["disconnect", 1006], ["finally"]]


# NOTE: not Uvicorn's own sans-I/O protocol, whose sends to a socket that asyncio has closed
# return at once without yielding (docs/websockets.md, "A client that leaves while the app
# sends"): the loop below wrote its 400 MB to nothing, a warning each, before it received.
@pytest.mark.parametrize("name", ["websockets", "microweb serve"])
def test_a_handler_still_sending_when_the_client_drops_the_connection_ends(
    servers: dict[str, Uvicorn], name: str
) -> None:
    # NOTE: 400 MB the client never reads: the handler is mid-send, held by the server's flow
    # control, when the connection drops.
    server, conn = servers[name], uuid.uuid4().hex
    with connect(f"{server.ws_url}/seq/{conn}", proxy=None, open_timeout=TIMEOUT) as ws:
        over_the_wire = OverTheWire(server, conn, ws)
        ws.send("!many:100000:4000")
        assert ws.recv(timeout=TIMEOUT).startswith("m0:")
        over_the_wire.vanish()
        assert over_the_wire.log() == [["disconnect", 1006], ["finally"]]
    log = server.log_text()
    assert "Traceback" not in log and "ERROR" not in log, log
