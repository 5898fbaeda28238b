"""The answer that refuses a WebSocket handshake under ASGI: a response (the denial-response
extension) with the headers the flows set on the handshake, or a close before accept, which
the server answers with 403."""

from __future__ import annotations

import contextlib

from ._asgi_request import sends_refusal
from ._emission import encoded_headers, outgoing
from ._request import Request
from ._response import Response
from ._results import copied
from ._types import Message, Send
from ._ws_handshake import HANDSHAKE_HEADERS


def with_flows_headers(request: Request, response: Response) -> Response:
    """Return a copy of ``response`` with the headers the flows set on the handshake's
    answer, where it sets none of that name (a ``Set-Cookie`` is added to its own, a ``Vary``
    joins its own), as ``accept()`` adds them; ``response`` itself when the flows set none."""
    # NOTE: the flows ran around the handshake before the handler refused it: their request
    # ID, security headers and session cookie went out on the acceptance and on a flow's
    # refusal, and were missing here, where over HTTP they are on every error's answer.
    from_flows = getattr(request.state, HANDSHAKE_HEADERS, None)
    if not from_flows:
        return response
    refusal = copied(response, reread=False)  # NOTE: the app may keep the one it returned.
    own = set(refusal.headers.keys())
    # NOTE: the refusal's cookies after the flows', as accept() orders them: a browser keeps
    # the last line of a cookie, and the flows' session cookie undid an error handler's
    # deleting it (signing the user out).
    cookies = refusal.headers.getlist("set-cookie")
    refusal.headers.pop("set-cookie")
    for name, value in from_flows.items():
        if name == "vary":
            _add_vary(refusal, value)
        elif name == "set-cookie" or (name not in own and name not in _ACCEPTANCES_OWN):
            refusal.headers.add(name, value)
    for cookie in cookies:
        refusal.headers.add("set-cookie", cookie)
    return refusal


# NOTE: what a flow may have set on the handshake's answer that belongs to an acceptance (and
# made accept() raise, for all but the length, which is dropped): not carried to a refusal.
_ACCEPTANCES_OWN = frozenset(
    {
        *("content-length", "upgrade", "sec-websocket-accept", "sec-websocket-extensions"),
        "sec-websocket-protocol",
    }
)


def _add_vary(response: Response, value: str) -> None:
    """Add to the ``Vary`` of ``response`` the names of ``value`` it does not list yet."""
    # NOTE: one line, as a flow's Vary joins an HTTP error's answer's (CORS's Origin to the
    # default answer's Accept): either alone told a cache less than the refusal varies on.
    lines = [line.strip() for line in response.headers.getlist("vary") if line.strip()]
    listed = {item.strip().lower() for line in lines for item in line.split(",")}
    added = [item.strip() for item in value.split(",") if item.strip()]
    added = [item for item in dict.fromkeys(added) if item.lower() not in listed]
    if added and "*" not in listed:
        response.headers["vary"] = ", ".join([*lines, *added])


async def send_flows_refusal(request: Request, refusal: Response, send: Send) -> None:
    """Refuse a handshake with the response the flows gave, where the server can send it."""
    if sends_refusal(request, refusal):
        await send_refusal(refusal, send)
    else:
        await refuse(send)  # NOTE: plain ASGI can only refuse (the server sends 403).


async def refuse(send: Send) -> None:
    """Refuse a handshake with a close before accept (the server answers it with 403)."""
    # NOTE: OSError: the client has gone meanwhile. Uvicorn's wsproto and websockets-sansio
    # protocols raise ClientDisconnected for any send then, and it left the app, which Uvicorn
    # logged with its traceback (ws.close() and send_refusal() end so too).
    with contextlib.suppress(OSError):
        await send(REFUSAL)


def refusing(request: Request, send: Send) -> Send:
    """Return ``send``, which answers a close before the accept with an empty 403 that
    carries the flows' headers, where the server can send it."""
    accepted = False

    async def send_or_refuse(message: Message) -> None:
        nonlocal accepted
        kind = message["type"]
        if kind == "websocket.accept":
            accepted = True
        elif kind == "websocket.close" and not accepted:
            # NOTE: the server's bare 403 for it lacked the request ID, security headers and
            # session cookie that a raised HTTPError(403) carries. SPEC: ASGI, a close before
            # accept is a 403 whatever its code, which a server that cannot send this gets.
            refusal = with_flows_headers(request, Response(b"", 403))
            if sends_refusal(request, refusal):
                await send_refusal(refusal, send)
                return
        await send(message)

    return send_or_refuse


# NOTE: a close before accept, which refuses the handshake: the server answers it with 403.
REFUSAL = {"type": "websocket.close", "code": 1008}


def refused_status(request: Request, response: Response) -> int:
    """Return the status the client of a handshake refused with ``response`` gets.

    It is 403 where the server cannot send ``response`` (see ``sends_refusal``), and for a
    1xx or 2xx status, which would say that nothing went wrong.
    """
    status = response._status
    if status < 300 or not sends_refusal(request, response):
        return 403
    return status


async def send_refusal(response: Response, send: Send) -> None:
    """Answer a refused handshake with ``response`` (the denial-response extension), whose
    1xx or 2xx status goes out as 403."""
    if response._status < 300:
        # NOTE: a class error handler's plain value is a 200, its None a 204, as over HTTP (and
        # a flow may answer a 200): a handshake's refusal said it went well. SPEC: RFC 6455
        # 4.1, any status but 101 fails the handshake; RFC 9110 15.5.4, 403 refuses it.
        response = copied(response, reread=False)
        response._status = 403
    headers, content = outgoing(response, "GET")
    start = {
        "type": "websocket.http.response.start",
        "status": response._status,
        "headers": encoded_headers(headers),
    }
    try:
        # NOTE: one after the other, with no await between them that yields: Uvicorn's older
        # websockets protocol writes the answer as it has it on its next turn.
        await send(start)
        await send({"type": "websocket.http.response.body", "body": content or b""})
    except OSError:
        pass  # NOTE: the client has gone meanwhile.
