"""A WebSocket session under ASGI: the flows around the handshake and their refusal, the
route's handler, the close code its end calls for, and the loop's turns while it sends."""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from ._asgi_request import sends_refusal
from ._concurrency import drive_async, error_of_request
from ._emission import close_replaced
from ._errors import ClientDisconnect, HTTPError, only_of, report_unhandled, status_of
from ._pipeline import fail
from ._request import Request, logged_path, logged_request
from ._types import Message, Receive, Scope, Send
from ._websocket import CLOSED, CONNECTING, WebSocket, WebSocketDisconnect
from ._ws_handshake import dispatch_handshake, refuse_handshake
from ._ws_refusal import (
    refuse,
    refused_status,
    refusing,
    send_flows_refusal,
    send_refusal,
    with_flows_headers,
)

if TYPE_CHECKING:
    from ._plan import Plan
    from ._pool import WorkerPool
    from ._routing import Route

logger = logging.getLogger("microweb")
# NOTE: the longest an async stream, or a task sending WebSocket messages, runs without
# giving the event loop a turn (seconds).
# PERF: a turn after every chunk took a stream of 1-byte chunks from 1.5 to 5.7 us a chunk;
# one per TURN costs no more than the noise, 0.1 us (process_time, 300,000 chunks, 2026-12-01).
TURN = 0.005


class SessionHost(Protocol):
    """What a session needs of the ASGI driver."""

    @property
    def plan(self) -> Plan: ...

    @property
    def pool(self) -> WorkerPool: ...


async def run_session(
    host: SessionHost, scope: Scope, request: Request, receive: Receive, send: Send
) -> None:
    """Run the flows around a WebSocket handshake, then its route's handler, and close the
    connection with the code its end calls for."""
    route = await _routed(host, request, send)
    if route is None:
        return
    try:
        if await _accepted(host, request, send):
            await _run_handler(host, route, scope, request, receive, send)
    finally:
        # NOTE: no answer went out: the client left first, or the server stopped the handler.
        _report(request, None)


async def _run_handler(
    host: SessionHost, route: Route, scope: Scope, request: Request, receive: Receive, send: Send
) -> None:
    """Run a route's handler on an accepted handshake; close as its end calls for."""
    limit = request.limits.max_websocket_message
    # SPEC: RFC 9110 5.6.1: empty list elements are ignored; Uvicorn passes on the "" of
    # "chat, , v2", which an app could accept (the client then got no subprotocol).
    subprotocols = [name for name in scope.get("subprotocols") or () if name]
    reported = refusing(request, _reporting(request, send))
    ws = WebSocket(request, receive, _turning(reported, send), subprotocols, limit)
    try:
        await route.handler(ws, **request.path_params)
    except WebSocketDisconnect:
        # NOTE: the client's leaving, and the socket is closed already (this close does
        # nothing), or the handler's own, which ends the connection as a return does. The
        # app answered nothing for that one: before accept(), Uvicorn sent a 500 and logged
        # "ASGI callable returned without completing handshake"; after, the client got no
        # close frame.
        await ws.close(1000)
    except HTTPError as exc:
        # NOTE: an answer the app chose (a header the client did not send, say): not
        # logged, as over HTTP. SPEC: RFC 6455 7.4.1, 1008 is a policy violation (the
        # client's 4xx), 1011 the server's trouble (a 5xx).
        exc.__traceback__ = None  # NOTE: one the app keeps kept every session's frames.
        if ws.state == CONNECTING:
            await _refuse_with(host, request, exc, ws, reported)
        else:
            await ws.close(_close_code(request, exc))
    except (Exception, asyncio.CancelledError) as exc:
        if only_of(exc, WebSocketDisconnect) is not None:
            # NOTE: a TaskGroup's, when its reading task saw the client leave: the client's
            # leaving, as above, which was logged as an error with its traceback.
            await ws.close(1000)
            return
        error = error_of_request(exc)
        if ws.state == CONNECTING:
            # NOTE: the handshake is still to answer: the error handlers answer it, as over
            # HTTP (a class handler's 401, a bug logged and the 500 page), where the client
            # got the 403 of a close and a logged traceback whatever the app's handlers.
            try:
                await _refuse_with(host, request, error, ws, reported)
            finally:
                del error  # NOTE: no cycle through this frame and the traceback.
            return
        logger.error("error in WebSocket handler for %s", logged_path(request), exc_info=error)
        report_unhandled(error)  # NOTE: before the close, which a test client then raises.
        del error  # NOTE: no cycle through this frame and the traceback.
        # SPEC: RFC 6455 7.4.1, 1011 is an unexpected condition on the server.
        await ws.close(1011 if ws.state == "open" else 1008)
    else:
        await ws.close(1000)


async def _routed(host: SessionHost, request: Request, send: Send) -> Route | None:
    """Route a handshake; ``None`` once it is refused (no such endpoint, or the 400 of a path
    that is not one or the error of its path converter answered)."""
    try:
        found = host.plan.match_websocket(request)
    except asyncio.CancelledError as exc:
        # NOTE: a converter's own (not the server's cancellation) left the app, where over
        # HTTP it is a bug of the request, logged and answered 500, as a handler's is.
        found = error_of_request(exc)
    if found is None or isinstance(found, Exception):
        try:
            await _refuse_unrouted(host, request, found, send)
        finally:
            # NOTE: its traceback holds this frame once the error went through the error
            # handlers, and this frame held it: a cycle that kept the request.
            del found
        return None
    return found


async def _refuse_unrouted(
    host: SessionHost, request: Request, refused: Exception | None, send: Send
) -> None:
    """Refuse a handshake no WebSocket route takes with what the flows make of ``refused``
    (see ``refuse_handshake``)."""
    refusing = refuse_handshake(host.plan, request, refused)
    # NOTE: the error's traceback holds this frame (its frames' callers, on Python 3.12), and
    # this frame held it: a cycle that kept the request until a full collection.
    del refused
    try:
        response = await drive_async(refusing, host.pool)
    except ClientDisconnect:
        await refuse(send)  # NOTE: as for a flow's (see _accepted).
        return
    close_replaced(request, response, None)  # NOTE: a stream of it is never sent.
    await send_flows_refusal(request, response, send)


def _close_code(request: Request, exc: HTTPError) -> int:
    """The close code of ``exc``, raised after ``accept()``: 1008 for a 4xx, else 1011."""
    status = status_of(exc)
    if status is None:
        # NOTE: a status that reads as no int (see status_of) left the app with its error
        # when compared with 500: the app's bug, logged as a handler's error.
        logger.error("error in WebSocket handler for %s", logged_path(request), exc_info=exc)
        report_unhandled(exc)
    return 1008 if status is not None and status < 500 else 1011


async def _refuse_with(
    host: SessionHost, request: Request, exc: Exception, ws: WebSocket, send: Send
) -> None:
    """Refuse a handshake with the error handlers' response to ``exc``, which the handler
    raised before ``accept()``, as a flow's error refuses it; or with a 403 where the server
    cannot send that response."""
    # NOTE: the handler's 401 reached the client as a 403, where a flow's went out whole
    # (and Starlette sends an HTTPException raised there).
    if await _refusal_sent(host, request, exc, send):
        ws.state, ws.close_code = CLOSED, 1008
    else:
        await ws.close(1008)


async def _refusal_sent(host: SessionHost, request: Request, exc: Exception, send: Send) -> bool:
    """Send the error handlers' response to ``exc`` as the handshake's refusal; ``False``
    where the server cannot send it, or for a ``ClientDisconnect`` (nothing sent)."""
    try:
        response = await drive_async(fail(host.plan, request, exc), host.pool)
    except ClientDisconnect as gone:
        # NOTE: fail() re-raises it: refused with nothing logged, as a flow's; it left the
        # app, which Uvicorn logged as "Exception in ASGI application". Its traceback now
        # holds this frame, which holds it: a cycle that kept the request.
        gone.__traceback__ = None
        # NOTE: a client gone, as a flow's is logged (and an HTTP request's): not the 403 of
        # the close that ends it.
        _report(request, None)
        return False
    close_replaced(request, response, None)  # NOTE: a stream of it is never sent.
    if not sends_refusal(request, response):
        return False
    await send_refusal(with_flows_headers(request, response), send)
    return True


async def _accepted(host: SessionHost, request: Request, send: Send) -> bool:
    """Run the flows around a handshake; refuse it and return ``False`` if one answered
    (or gave up on it)."""
    try:
        refusal = await drive_async(dispatch_handshake(host.plan, request), host.pool)
    except ClientDisconnect:
        # NOTE: a flow raised it: refused, as an HTTP request gets its 400, with nothing
        # logged and nothing out of the app (which Uvicorn would log, answering 500).
        await refuse(send)
        return False
    if refusal is None:
        return True
    await send_flows_refusal(request, refusal, send)
    # NOTE: a flow that saw the 101 (AccessLog further in) asked for the answer, which a flow
    # outside it replaced with this refusal: its line was never written.
    _report(request, refused_status(request, refusal))
    return False


def when_answered(request: Request, report: Callable[[int | None], None]) -> None:
    """Call ``report`` with the status of the answer to a handshake the flows accepted, once
    its handler has given it: 101, a refusal's, or ``None`` if none went out.

    For ``AccessLog``, whose flow ends before the handler runs, which may still refuse.
    """
    reports = getattr(request.state, _REPORTS, None)
    if reports is None:
        reports = []
        setattr(request.state, _REPORTS, reports)
    reports.append(report)


# NOTE: the attribute of request.state that holds when_answered()'s calls: a name no app can
# write as an attribute, since request.state is the app's. As "handshake_answered", an app's
# own value there made AccessLog's flow raise (a 500) or the session's end raise out of the app.
_REPORTS = "microweb.handshake_answered"


def _report(request: Request, status: int | None) -> None:
    """Make the calls of ``when_answered()`` with ``status``, once: later answers are none."""
    reports = vars(request.state).pop(_REPORTS, None)
    for report in reports or ():
        try:
            report(status)
        except Exception as exc:
            # NOTE: the answer has gone out, and the session goes on, as past an after-response
            # callback's failure: raised into accept() after the 101, the handler's error was
            # answered with a refusal, sent on an accepted connection.
            logger.error("answer report of %s failed", logged_request(request), exc_info=exc)


def _reporting(request: Request, send: Send) -> Send:
    """Return ``send``, which reports (see ``when_answered``) the answer to the handshake."""
    if getattr(request.state, _REPORTS, None) is None:
        return send

    async def reporting(message: Message) -> None:
        await send(message)
        kind = message["type"]
        if kind == "websocket.accept":
            _report(request, 101)
        elif kind == "websocket.http.response.start":
            _report(request, message["status"])
        elif kind == "websocket.close":
            # SPEC: a close before accept makes the server refuse the handshake with 403.
            _report(request, 403)

    return reporting


def _turning(send: Send, sends_messages: Send | None = None) -> Send:
    """Return ``send``, giving the event loop a turn when the sending task has sent for
    ``TURN`` seconds since its last one; a WebSocket's messages go to ``sends_messages``
    where given (``send`` without the reporting of ``_reporting()``, which answers none).

    For a WebSocket's messages, as ``_send_stream`` does for a body's chunks: plain Uvicorn's
    send() returns at once once the client dropped the connection, until the loop has seen it
    go, so a handler that only sends never gave it a turn: 100,000 sends of 4 KB held the
    loop 2.1 s and logged 68,618 warnings before one raised (review173).
    """

    # NOTE: the report of the handshake's answer (AccessLog) is on the accept and the close
    # alone: a wrapper of every send made each message of a session one call deeper.
    to_send = send if sends_messages is None else sends_messages

    async def turning(message: Message) -> None:
        if message["type"] == "websocket.send":
            # NOTE: one clock per task, not per socket: a broadcast over 10,000 sockets that
            # had been quiet took a turn for each, 2.8 us a send (review178).
            task = asyncio.current_task()
            now = _clock()
            turn_at = _turns.get(task)
            if turn_at is None:
                _turns[task] = now + TURN
            elif now >= turn_at:
                # NOTE: before the send, not after it: after, a task cancelled in the turn
                # raised CancelledError for a message that had gone out (review178). Not for
                # the accept or the close, one message each: a close cancelled in a turn
                # before it would not go out.
                await asyncio.sleep(0)
                _turns[task] = _clock() + TURN
            await to_send(message)
        else:
            await send(message)

    return turning


# NOTE: when each task that sends WebSocket messages gives the loop its next turn; a task's
# entry goes with the task.
_turns: weakref.WeakKeyDictionary[Any, float] = weakref.WeakKeyDictionary()
_clock = time.monotonic
