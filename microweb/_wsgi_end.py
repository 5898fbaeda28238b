"""How a WSGI request ends: its after-response callbacks, run as its body is closed (or once
the server has sent all, where it says when: ``AFTER_SENT``), in the request's context; and the
500 of a request that the app's close cut off."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from functools import partial
from typing import TYPE_CHECKING, cast

from ._app_loop import AppClosed, LoopStopped
from ._concurrency import drive_sync
from ._default_answers import default_error
from ._effects import ENDED, run_after
from ._request import Request, logged_method, logged_path, logged_request

if TYPE_CHECKING:
    import contextvars

    from ._app_loop import AppLoop
    from ._body import WSGIBody
    from ._response import Response

logger = logging.getLogger("microweb")

# NOTE: an environ key a server may set (microweb serve's Waitress does): a callable that takes
# a function and calls it once the response is sent whole. Waitress sends a streamed body's last
# chunk, and the head of an answer with no body (HEAD, 204, 304), only after the body's close():
# callbacks run in close() held the client until they had run.
AFTER_SENT = "microweb.after_sent"


class WholeBody:
    """A whole body whose ``close()`` runs the request's after-response callbacks, in
    ``context``, the request's."""

    def __init__(
        self,
        chunks: list[bytes],
        app_loop: AppLoop,
        request: Request,
        context: contextvars.Context,
    ) -> None:
        self._chunks, self._app_loop, self._request = chunks, app_loop, request
        self._context = context

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._chunks)

    def close(self) -> None:
        self._context.run(end_request, self._request, self._app_loop, self._context)


def end_request(request: Request, app_loop: AppLoop, context: contextvars.Context) -> None:
    """End ``request`` from its body's ``close()`` (run in ``context``, the request's): at
    once, or once the server has sent all, in that context again."""
    after_sent = request._raw.get(AFTER_SENT) if request._after is not None else None
    if after_sent is None:
        after_response(request, app_loop)
    else:
        after_sent(partial(context.run, after_response, request, app_loop))


def cut_off(request: Request, app_closed: bool, stopped: LoopStopped | None = None) -> Response:
    """Answer a request cut off by the app's close: a 500, where it can still go out.

    ``app_closed``: the app was closed before the call began (``AppClosed``); ``stopped``:
    the loop's stop that cut the call off, if it did.
    """
    # NOTE: as Uvicorn's cancellation gives, with no traceback and no error handler: a
    # server's stop after its grace period, which logged it, or a call on a closed app.
    if app_closed:
        _log_closed(request, "answered 500")
    elif stopped is not None:
        _left_running(request, stopped)
    return default_error(request, 500, None, {})


def _left_running(request: Request, stopped: LoopStopped) -> None:
    """Name ``request`` in one warning if its call on the app loop ignored its cancellation
    past the loop's stop (``stopped.pending``), and let asyncio say nothing of its task.

    NOTE: asyncio's "Task was destroyed but it is pending!" named the task of the app loop's
    (``_run_hop()``), not the request, whenever the task was collected, maybe much later; a
    flow's step is named by its flow (``_cut_closing.named_by_its_flow``) (review380).
    """
    task, stopped.pending = stopped.pending, None
    if task is None or task.done():
        return
    task._log_destroy_pending = False  # type: ignore[attr-defined]
    logger.warning(
        "%s %s was left to its collection as the app loop stopped: its async code ignored "
        "its cancellation and still runs; its finally blocks run when it is collected",
        logged_method(request),
        logged_path(request),
    )


def _log_closed(request: Request, outcome: str) -> None:
    # NOTE: no server's log says why this request failed.
    logger.warning(
        "%s %s reached async code after the app was closed: %s",
        logged_method(request),
        logged_path(request),
        outcome,
    )


def after_response(request: Request, app_loop: AppLoop) -> None:
    # SPEC: PEP 3333, the server calls close() once the body is sent, or the client has gone.
    try:
        if request._after is not None:
            # NOTE: made if not yet, so that a callback's is_disconnected() says the request has
            # ended, as under ASGI, whether or not the handler read the body.
            cast("WSGIBody", request._body_source()).ended = True
            try:
                drive_sync(run_after(request._after, partial(logged_request, request)), app_loop)
            except LoopStopped as stopped:
                # NOTE: callbacks cut off by the app's close were counted as in flight, and
                # the server's stop logged them; the rest of them cannot run. Those of a
                # request that began after the close were dropped with no word (review62).
                if isinstance(stopped, AppClosed):
                    _log_closed(request, "after-response callbacks not run")
    finally:
        if request._after is None:
            request._after = ENDED  # NOTE: a callback added from now on would never run.
        request.close()
