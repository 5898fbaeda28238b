"""What a handshake the handler refuses answers: the flows' headers, as on a flow's refusal and
on the acceptance, and a status that says it was refused. (WebSockets exist under ASGI only;
the WSGI side's refusal is tested in test_servers_websocket_wsgi.py.)"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from conftest import MakeClient, in_colour
from drive import handshake_messages, websocket_scope

from microweb import (
    App,
    ClientDisconnect,
    Headers,
    HTTPError,
    Request,
    Response,
    WebSocket,
    WebSocketDisconnect,
)
from microweb._asgi_request import DENIAL_RESPONSE, DENIAL_SENT_WHOLE
from microweb._types import Message
from microweb.plugins import CORS, RequestID


class NotSignedIn(Exception):
    pass


def _refused(client: Any, path: str) -> Any:
    with pytest.raises(WebSocketDisconnect) as refused:
        client.websocket_connect(path)
    answer = refused.value.response
    assert answer is not None
    return answer


def _guarded_app(colour: str) -> App:
    app = App()
    app.install(RequestID(generator=lambda: "rid-1"))

    def guard(request: Request) -> Iterator[None]:
        response = yield
        response.headers["x-frame-options"] = "DENY"
        response.headers["x-kept"] = "flow"
        response.set_cookie("seen", "1")

    if colour == "sync":
        app.middleware(guard)
    else:

        async def aguard(request: Request) -> Any:
            response = yield
            response.headers["x-frame-options"] = "DENY"
            response.headers["x-kept"] = "flow"
            response.set_cookie("seen", "1")

        app.middleware(aguard)

    def sign_in(request: Request, exc: NotSignedIn) -> Response:
        answer = Response("sign in first", status=401, headers={"x-kept": "handler"})
        answer.set_cookie("why", "signin")
        return answer

    app.error_handler(NotSignedIn)(in_colour(colour, sign_in))

    @app.websocket("/ws")
    async def handler(ws: WebSocket) -> None:
        token = ws.request.query.get("token")
        if token == "none":
            raise NotSignedIn()
        if token == "http":
            raise HTTPError(403, "not yours")
        if token == "bug":
            raise KeyError(token)
        if token == "close":
            await ws.close(4003)
            return
        if token == "return":
            return
        await ws.accept()

    return app


@pytest.mark.parametrize("colour", ["sync", "async"])
@pytest.mark.parametrize(
    ("token", "status"),
    [("none", 401), ("http", 403), ("bug", 500), ("close", 403), ("return", 403)],
    ids=["class", "http", "bug", "close", "return"],
)
def test_a_handlers_refusal_carries_the_flows_headers(
    asgi_client: MakeClient, colour: str, token: str, status: int
) -> None:
    # NOTE: the flows' headers went out on the acceptance and on a flow's refusal, not on the
    # handler's: its request ID, a security header, a session's cookie were missing there.
    client = asgi_client(_guarded_app(colour))
    answer = _refused(client, f"/ws?token={token}")
    assert answer.status_code == status
    assert answer.headers["x-request-id"] == "rid-1"
    assert answer.headers["x-frame-options"] == "DENY"
    cookies = answer.headers.get_list("set-cookie")
    assert any(cookie.startswith("seen=1") for cookie in cookies)
    if token == "none":
        # NOTE: the refusal's own header wins, as accept()'s do; its cookie joins the flows'.
        assert answer.headers.get_list("x-kept") == ["handler"]
        assert any(cookie.startswith("why=signin") for cookie in cookies)


@pytest.mark.parametrize("token", ["close", "return"])
def test_a_close_before_accept_is_an_empty_403(asgi_client: MakeClient, token: str) -> None:
    # NOTE: a close before accept() went out as the server's bare 403, without the flows'
    # headers that a raised HTTPError(403) carries.
    answer = _refused(asgi_client(_guarded_app("sync")), f"/ws?token={token}")
    assert (answer.status_code, answer.content) == (403, b"")
    assert answer.headers["content-length"] == "0"


@pytest.mark.parametrize("token", ["close", "return"])
def test_a_close_before_accept_under_a_server_that_cannot_send_denials_keeps_its_code(
    token: str,
) -> None:
    # SPEC: ASGI, a websocket.close before accept is the server's 403; its code is the app's.
    scope = websocket_scope("/ws")
    scope["query_string"] = f"token={token}".encode()
    sent = handshake_messages(_guarded_app("sync").as_asgi(), scope)
    assert [(message["type"], message["code"]) for message in sent] == [
        ("websocket.close", 4003 if token == "close" else 1000)
    ]


def test_the_flows_headers_still_go_out_with_the_acceptance(asgi_client: MakeClient) -> None:
    client = asgi_client(_guarded_app("sync"))
    with client.websocket_connect("/ws?token=ok") as session:
        headers = dict(session.accepted["headers"])
    assert headers[b"x-frame-options"] == b"DENY"


@pytest.mark.parametrize("refuse", [True, False], ids=["refused", "accepted"])
def test_an_apps_own_state_named_handshake_headers_is_not_sent(
    asgi_client: MakeClient, refuse: bool
) -> None:
    # NOTE: the flows' headers were kept in request.state.handshake_headers, where a handler
    # may keep its own: the request headers it kept there went out as response headers.
    app = App()
    app.install(RequestID(generator=lambda: "rid-1"))

    @app.websocket("/ws")
    async def handler(ws: WebSocket) -> None:
        ws.request.state.handshake_headers = {"x-kept-by-app": "request's"}
        if refuse:
            raise HTTPError(401, "sign in first")
        await ws.accept()

    client = asgi_client(app)
    if refuse:
        headers = _refused(client, "/ws").headers
    else:
        with client.websocket_connect("/ws") as session:
            headers = Headers((k.decode(), v.decode()) for k, v in session.accepted["headers"])
    assert "x-kept-by-app" not in headers
    assert headers["x-request-id"] == "rid-1"


def _unrouted_app() -> App:
    app = App()
    app.install(RequestID(generator=lambda: "rid-1"))

    @app.middleware
    def stamp(request: Request) -> Iterator[None]:
        response = yield
        response.headers["x-frame-options"] = "DENY"

    def locked(text: str) -> str:
        raise HTTPError(401, "locked")

    app.add_converter("locked", locked)

    @app.websocket("/rooms/{name:locked}")
    async def room(ws: WebSocket, name: str) -> None:
        await ws.accept()

    return app


@pytest.mark.parametrize(
    ("path", "status"),
    [("/nowhere", 404), ("/rooms/a", 401), ("/caf%ff", 400)],
    ids=["no-route", "converter", "malformed"],
)
def test_a_handshake_no_route_takes_is_refused_through_the_flows(
    asgi_client: MakeClient, path: str, status: int
) -> None:
    # NOTE: refused before any flow ran, it had no request ID and no security header, where
    # an HTTP request's 404 (or 400) goes through the flows; now it goes through them too.
    answer = _refused(asgi_client(_unrouted_app()), path)
    assert answer.status_code == status
    assert answer.headers["x-request-id"] == "rid-1"
    # NOTE: a converter's error is thrown in at the flows, as over HTTP: a flow that does not
    # catch it does not see the answer.
    assert ("x-frame-options" in answer.headers) is (path != "/rooms/a")


def _app_answering(colour: str, value: Callable[[], Any]) -> App:
    app = App()

    def answer(request: Request, exc: NotSignedIn) -> Any:
        return value()

    app.error_handler(NotSignedIn)(in_colour(colour, answer))

    @app.websocket("/ws")
    async def handler(ws: WebSocket) -> None:
        raise NotSignedIn()

    return app


@pytest.mark.parametrize("colour", ["sync", "async"])
@pytest.mark.parametrize(
    ("value", "body"),
    [
        (lambda: "sign in first", "sign in first"),
        (lambda: None, ""),
        (lambda: {"error": "sign in"}, '{"error":"sign in"}'),
        (lambda: Response("fine", status=200, headers={"x-why": "sign-in"}), "fine"),
    ],
    ids=["str", "none", "dict", "response-200"],
)
def test_an_error_handlers_2xx_answer_to_a_handshake_refuses_it_with_403(
    asgi_client: MakeClient, colour: str, value: Callable[[], Any], body: str
) -> None:
    # NOTE: a class handler's plain value is a 200 (None a 204), as over HTTP; sent as the
    # handshake's refusal it said the handshake went well, where the client had no socket.
    answer = _refused(asgi_client(_app_answering(colour, value)), "/ws")
    assert answer.status_code == 403
    assert answer.text == body
    if body == "fine":
        assert answer.headers["x-why"] == "sign-in"


def test_a_redirect_refusing_a_handshake_keeps_its_status(asgi_client: MakeClient) -> None:
    # NOTE: a client may follow it (the websockets library does).
    app = _app_answering("sync", lambda: Response.redirect("/elsewhere", 307))
    answer = _refused(asgi_client(app), "/ws")
    assert (answer.status_code, answer.headers["location"]) == (307, "/elsewhere")


@pytest.mark.parametrize("colour", ["sync", "async"])
def test_a_flows_2xx_answer_to_a_handshake_refuses_it_with_403(
    asgi_client: MakeClient, colour: str
) -> None:
    app = App()

    def closed_for_now(request: Request) -> Iterator[Response | None]:
        yield Response("back soon")

    async def aclosed_for_now(request: Request) -> AsyncIterator[Response | None]:
        yield Response("back soon")

    app.middleware(closed_for_now if colour == "sync" else aclosed_for_now)

    @app.websocket("/ws")
    async def handler(ws: WebSocket) -> None:
        await ws.accept()

    answer = _refused(asgi_client(app), "/ws")
    assert (answer.status_code, answer.text) == (403, "back soon")


def test_a_2xx_refusal_is_a_403_under_a_server_that_sends_denials() -> None:
    app = _app_answering("sync", lambda: "sign in first")
    scope = websocket_scope("/ws")
    scope["extensions"] = {"websocket.http.response": {}, "microweb.denial_response": {}}
    sent = handshake_messages(app.as_asgi(), scope)
    assert [message["type"] for message in sent] == [
        "websocket.http.response.start",
        "websocket.http.response.body",
    ]
    assert sent[0]["status"] == 403
    assert sent[1]["body"] == b"sign in first"


def test_a_handlers_refusal_varies_on_what_the_flows_and_the_error_read(
    asgi_client: MakeClient,
) -> None:
    # NOTE: the default error answer varies on Accept, CORS's flow on Origin: the refusal kept
    # its own Vary line only, where the same error over HTTP says both.
    app = App()
    app.install(CORS(["https://a.example"]))

    @app.websocket("/ws")
    async def handler(ws: WebSocket) -> None:
        raise HTTPError(401)

    @app.get("/http")
    def page(request: Request) -> str:
        raise HTTPError(401)

    client = asgi_client(app)
    origin = {"origin": "https://a.example"}
    with pytest.raises(WebSocketDisconnect) as refused:
        client.websocket_connect("/ws", headers=origin)
    answer = refused.value.response
    assert answer is not None
    over_http = client.get("/http", headers=origin)
    assert answer.headers.get_list("vary") == over_http.headers.get_list("vary")
    assert answer.headers["vary"] == "Accept, Origin"


def _handshake_to(raw_path: bytes, announced: bool) -> list[dict[str, Any]]:
    app = App()

    @app.error_handler(400)
    def bad(request: Request, exc: HTTPError) -> str:
        return f"bad: {exc.detail}"

    @app.websocket("/{name}")
    async def handler(ws: WebSocket, name: str) -> None:
        await ws.accept()

    scope = websocket_scope("/x")
    scope["raw_path"], scope["path"] = raw_path, raw_path.decode("latin-1")
    if announced:
        scope["extensions"] = {"websocket.http.response": {}, "microweb.denial_response": {}}
    return handshake_messages(app.as_asgi(), scope)


@pytest.mark.parametrize(
    ("raw_path", "detail"),
    [
        (b"/caf\xe9", b"request path is not valid UTF-8"),
        (b"/caf%ff", b"request path is not valid UTF-8"),
        (b"caf", b"request target is not a path: it must start with '/' ('*' only for OPTIONS)"),
    ],
)
def test_a_handshake_whose_path_is_malformed_is_refused_with_400(
    raw_path: bytes, detail: bytes
) -> None:
    # NOTE: the 400 an HTTP request for it gets (RFC 6455 4.2.1: a handshake the server
    # cannot read), where the server can send an answer; the 403 of a close where it cannot.
    sent = _handshake_to(raw_path, announced=True)
    assert [message["type"] for message in sent] == [
        "websocket.http.response.start",
        "websocket.http.response.body",
    ]
    assert sent[0]["status"] == 400
    assert sent[1]["body"] == b"bad: " + detail
    # NOTE: a server that can only refuse sends 403.
    assert _handshake_to(raw_path, announced=False) == [{"type": "websocket.close", "code": 1008}]


def test_a_handlers_refusal_leaves_out_the_handshake_headers_of_an_acceptance(
    asgi_client: MakeClient,
) -> None:
    # NOTE: a flow's Sec-WebSocket-Protocol made accept() raise (the subprotocol is chosen
    # there): its 500 carried that header, and the flow's Upgrade, on to the refusal.
    app = App()

    @app.middleware
    def wrong(request: Request) -> Iterator[None]:
        response = yield
        response.headers["sec-websocket-protocol"] = "chat"
        response.headers["upgrade"] = "websocket"
        response.headers["x-kept"] = "1"

    @app.websocket("/ws")
    async def handler(ws: WebSocket) -> None:
        await ws.accept()

    answer = _refused(asgi_client(app), "/ws")
    assert answer.status_code == 500
    assert answer.headers["x-kept"] == "1"
    assert "sec-websocket-protocol" not in answer.headers
    assert "upgrade" not in answer.headers


@pytest.mark.parametrize("colour", ["sync", "async"])
def test_a_refusals_own_cookie_wins_over_the_flows_one_of_that_name(
    asgi_client: MakeClient, colour: str
) -> None:
    # NOTE: the flows' Set-Cookie lines went after the refusal's own: an error handler that
    # signed the user out (deleting the session cookie) was undone by the session's cookie
    # the flows had set on the handshake, the later line, which a browser keeps.
    from microweb.plugins import Sessions

    app = App()
    app.install(Sessions("k" * 32))

    @app.middleware
    def visits(request: Request) -> Iterator[None]:
        request.session["visits"] = request.session.get("visits", 0) + 1
        yield

    def sign_out(request: Request, exc: NotSignedIn) -> Response:
        answer = Response("signed out", status=401)
        answer.delete_cookie("session")
        return answer

    app.error_handler(NotSignedIn)(in_colour(colour, sign_out))

    @app.get("/login")
    def login(request: Request) -> str:
        request.session["user"] = "ann"
        return "in"

    @app.get("/who")
    def who(request: Request) -> str:
        return str(request.session.get("user"))

    @app.websocket("/ws")
    async def handler(ws: WebSocket) -> None:
        raise NotSignedIn()

    client = asgi_client(app)
    client.get("/login")
    answer = _refused(client, "/ws")
    assert answer.status_code == 401
    cookies = answer.headers.get_list("set-cookie")
    assert len(cookies) == 2
    assert cookies[-1].startswith("session=;")
    assert client.get("/who").text == "None"


def _refusing_app() -> App:
    app = App()

    @app.middleware
    async def gate(request: Request) -> AsyncIterator[None]:
        refusal = request.query.get("refuse")
        if refusal == "stream":
            yield Response.stream(iter([b"not yours"]), status=403)
            return
        if refusal == "499":
            yield Response(b"", status=499)  # NOTE: no status line a server knows.
            return
        yield

    @app.websocket("/ws")
    async def handler(ws: WebSocket) -> None:
        await ws.accept()

    return app


@pytest.mark.parametrize("denial", [False, True], ids=["plain", "denial-response"])
@pytest.mark.parametrize(
    ("path", "query"),
    [("/nowhere", b""), ("/ws", b"refuse=stream"), ("/ws", b"refuse=499")],
    ids=["no-route", "flow-stream", "flow-499"],
)
def test_a_refusal_by_close_to_a_client_gone_does_not_leave_the_app(
    path: str, query: bytes, denial: bool
) -> None:
    # NOTE: Uvicorn's wsproto and websockets-sansio protocols raise ClientDisconnected (an
    # OSError) for any send once the client left, a close before accept too: where the
    # refusal was that close, it left the app, which Uvicorn logged with its traceback; the
    # handler's own close, and a denial response, take the client's leaving as the end.
    scope = websocket_scope(path)
    scope["query_string"] = query
    if denial:
        scope["extensions"] = {DENIAL_RESPONSE: {}, DENIAL_SENT_WHOLE: {}}
    tried: list[Message] = []

    async def receive() -> Message:
        return {"type": "websocket.connect"}

    async def send(message: Message) -> None:
        tried.append(message)
        raise ConnectionResetError("the client went away")

    asyncio.run(asyncio.wait_for(_refusing_app().as_asgi()(scope, receive, send), 5))
    assert tried[0]["type"] in {"websocket.close", "websocket.http.response.start"}


def _handled_app(colour: str, seen: list[tuple[int, str]]) -> App:
    app = _unrouted_app()

    def logged(request: Request, exc: HTTPError) -> Response:
        seen.append((exc.status, request.path))
        return Response(f"handled {exc.status}", status=exc.status, headers={"x-handled": "1"})

    for status in (400, 401, 404):
        app.error_handler(status)(in_colour(colour, logged))
    return app


@pytest.mark.parametrize("colour", ["sync", "async"])
@pytest.mark.parametrize(
    ("path", "status"),
    [("/nowhere", 404), ("/rooms/a", 401), ("/caf%ff", 400)],
    ids=["no-route", "converter", "malformed"],
)
def test_the_error_handlers_answer_a_handshake_no_route_takes(
    asgi_client: MakeClient, colour: str, path: str, status: int
) -> None:
    # NOTE: a path with no WebSocket route was an empty 403 that no error handler saw, where
    # an HTTP request's 404 goes through them (a 404 handler that logs, or sets a header):
    # now the 404 of an HTTP request, through the flows and the error handlers.
    seen: list[tuple[int, str]] = []
    answer = _refused(asgi_client(_handled_app(colour, seen)), path)
    assert (answer.status_code, answer.text) == (status, f"handled {status}")
    assert answer.headers["x-handled"] == "1"
    assert answer.headers["x-request-id"] == "rid-1"
    assert seen == [(status, "" if status == 400 else path)]  # NOTE: no path to read.


@pytest.mark.parametrize("path", ["/nowhere", "/rooms/a", "/caf%ff"])
def test_the_error_handlers_see_a_handshake_no_route_takes_under_a_plain_asgi_server(
    path: str,
) -> None:
    # NOTE: a server without the denial response refuses with its own bare 403 (a close):
    # the error handler has run all the same (its logging), and nothing left the app.
    seen: list[tuple[int, str]] = []
    sent = handshake_messages(_handled_app("sync", seen).as_asgi(), websocket_scope(path))
    assert sent == [{"type": "websocket.close", "code": 1008}]
    assert len(seen) == 1


def test_a_handshake_no_route_takes_gets_the_default_404(asgi_client: MakeClient) -> None:
    answer = _refused(asgi_client(App()), "/nowhere")
    assert (answer.status_code, answer.text) == (404, "Not Found")


# NOTE: what a flow, a converter or the handler raises to refuse a handshake, by name.
_RAISED: dict[str, Callable[[], Exception]] = {
    "http": lambda: HTTPError(401, "sign in first"),
    "class": NotSignedIn,
    "bug": lambda: KeyError("bug"),
    "gone": lambda: ClientDisconnect("the client left"),
}


def _every_refusal_app() -> App:
    app = App()

    @app.middleware
    def gate(request: Request) -> Iterator[Any]:
        kind = request.query.get("flow", "")
        if kind == "response":
            yield Response("sign in first", status=401)
        elif kind == "stream":
            yield Response.stream(iter([b"no"]), status=403)
        elif kind in _RAISED:
            raise _RAISED[kind]()
        else:
            yield

    def odd(text: str) -> str:
        raise _RAISED[text]() if text in _RAISED else ValueError(text)

    app.add_converter("odd", odd)

    @app.websocket("/rooms/{name:odd}")
    async def room(ws: WebSocket, name: str) -> None:
        await ws.accept()

    @app.websocket("/ws")
    async def handler(ws: WebSocket) -> None:
        kind = ws.request.query.get("handler", "")
        if kind in _RAISED:
            raise _RAISED[kind]()
        await ws.accept()

    return app


_EVERY_REFUSAL = [
    ("/ws", b"flow=response"),
    ("/ws", b"flow=http"),
    ("/ws", b"flow=gone"),
    ("/ws", b"flow=stream"),
    ("/ws", b"handler=http"),
    ("/ws", b"handler=class"),
    ("/ws", b"handler=bug"),
    ("/ws", b"handler=gone"),
    ("/nowhere", b""),
    ("/rooms/no", b""),
    ("/rooms/http", b""),
    ("/rooms/bug", b""),
    ("/caf%ff", b""),
]


@pytest.mark.parametrize("client_gone", [False, True], ids=["client-here", "client-gone"])
@pytest.mark.parametrize(
    ("path", "query"), _EVERY_REFUSAL, ids=[f"{p}?{q.decode()}" for p, q in _EVERY_REFUSAL]
)
def test_every_refusal_under_a_server_that_cannot_send_denials_is_one_close_1008(
    path: str, query: bytes, client_gone: bool
) -> None:
    # NOTE: a server without the denial response answers a close before accept with its bare
    # 403: each way of refusing ends in that one close, with the policy-violation code, and
    # nothing leaves the app, the client gone too (Uvicorn's protocols raise an OSError).
    scope = websocket_scope(path)
    scope["query_string"] = query
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "websocket.connect"}

    async def send(message: Message) -> None:
        sent.append(message)
        if client_gone:
            raise ConnectionResetError("the client went away")

    asgi = _every_refusal_app().as_asgi()
    asyncio.run(asyncio.wait_for(asgi(scope, receive, send), 5))
    assert [(message["type"], message["code"]) for message in sent] == [("websocket.close", 1008)]


@pytest.mark.parametrize("outer_colour", ["sync", "async"])
def test_a_404_handlers_own_generator_exit_on_a_handshake_closes_the_flows(
    colour: str, outer_colour: str
) -> None:
    # NOTE: the refusal of a handshake no route takes is answered inside the flows: its error
    # handler's GeneratorExit went out as it was, the flows left to its traceback's
    # collection (review336).
    import gc

    from test_flows_errors import _closing_flow

    events: list[str] = []
    app = App()
    app.middleware(_closing_flow(outer_colour, events))

    def on_404(request: Request, exc: Exception) -> str:
        raise GeneratorExit("the error handler's")

    app.error_handler(404)(in_colour(colour, on_404))
    gc.disable()
    try:
        with pytest.raises(GeneratorExit):
            try:
                handshake_messages(app.as_asgi(), websocket_scope("/nowhere"))
            finally:
                seen = list(events)
    finally:
        gc.enable()
    assert seen == ["closed"]
