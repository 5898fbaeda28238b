"""Calling app code in its colour, and answering the errors it raises.

``call`` yields the effect a handler, an error handler or a flow step needs; ``error_response``
turns an exception into a registered error handler's answer or the default error body
(``_default_answers``, with what the drivers answer past the handlers). What is logged of the
errors is ``_error_logs``'.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from ._buffer import is_too_large
from ._default_answers import default_error, last_resort
from ._effects import Colored, Effects, Ending, Offload, closing_here
from ._emission import negotiate_file
from ._error_logs import log_answered, log_failed, log_unhandled
from ._errors import (
    ClientDisconnect,
    HTTPError,
    answer_status,
    only_of,
    raise_own,
    report_unhandled,
    status_of,
)
from ._request import logged_method, logged_path
from ._response import Response
from ._results import copied, to_response

if TYPE_CHECKING:
    from ._plan import ErrorHandler, Plan
    from ._request import Request

logger = logging.getLogger("microweb")


def call(target: Colored, request: Request, *args: Any, **kwargs: Any) -> Effects:
    """Call ``target(request, ...)`` in its colour, yielding the effect the driver must run."""
    if target.is_async:
        return (yield target.fn(request, *args, **kwargs))
    if target.offload:
        if request.may_block:
            try:
                return target.fn(request, *args, **kwargs)
            except BaseException as exc:
                raise_own(exc)
                raise
        return (yield Offload(target.fn, (request, *args), kwargs))
    request._inline = request._thread_id()
    try:
        return target.fn(request, *args, **kwargs)
    except BaseException as exc:
        raise_own(exc)
        raise
    finally:
        request._inline = 0


def error_response(
    plan: Plan,
    request: Request,
    exc: Exception,
    broken_before: bool = False,
    in_flows: bool = False,
) -> Effects:
    """Turn ``exc`` into a response: a registered error handler's, or the default one.

    ``broken_before`` tells that ``exc`` is the error of an ``HTTPError`` that made no default
    answer: if this answer ends in one such again, the default 500 goes out. ``in_flows``
    tells that flows wait around this answer: an error handler's failure is raised to them.

    Raises:
        ClientDisconnect: For an exception group of them only (a ``TaskGroup``'s whose task
            read the body of a client that left): nothing should be sent.
        Exception: With ``in_flows``, what the error handler raised (but an ``HTTPError``),
            logged: the flows see it as any bug, and its 500 is made outside them.
    """
    left = None if isinstance(exc, HTTPError) else only_of(exc, ClientDisconnect)
    if left is not None:
        # NOTE: a client's leaving, as a ClientDisconnect alone is: it was logged as an
        # unhandled error with its traceback, and answered with a 500.
        raise left
    # NOTE: an error page may answer a request that flows it raised in front of never saw:
    # request.session is then an empty one, not the error of a flow that reads it too early.
    request._error_page = True
    if isinstance(exc, HTTPError):
        # NOTE: a request whose headers are over the limit is refused for them (431) whatever
        # else it met: the default answer reads them (Accept), and so found the 431 after the
        # handler was chosen, so a 404 was answered with the default 431, not the app's 431
        # handler (review160).
        refused = _headers_refusal(request)
        if refused is not None:
            _answered(exc)
            exc = refused
    failed = _handler_failed_in_flows(request, exc)
    handler = None if failed else plan.error_handler_of(exc, request.route)
    if handler is None:
        if not isinstance(exc, HTTPError) and not failed:
            log_unhandled(request, exc)
    else:
        response, exc = yield from _handler_answer(request, handler, exc)
        if response is not None:
            return response
        if in_flows and not isinstance(exc, HTTPError):
            # NOTE: its 500 went through the flows as an answer: the sessions flow saved a
            # session the request that failed had changed (Set-Cookie on a 500), a flow that
            # ends on errors took it for a response. A bug's 500 is made outside them.
            request._failed_handler = exc
            try:
                raise exc
            finally:
                del exc  # NOTE: this frame, in its traceback, held it: a cycle.
    try:
        if isinstance(exc, HTTPError):
            return (yield from _default_answer(plan, request, exc, broken_before))
        refused = _headers_refusal(request)
        if refused is not None:
            # NOTE: the default 500 would be a 431 (it reads Accept): the app's 431 handler
            # answers it, as any 431. The bug itself was logged above.
            report_unhandled(exc)
            return (yield from error_response(plan, request, refused))
        return last_resort(plan, request, exc)
    finally:
        _answered(exc)
        # NOTE: the handler's failure has this frame in its traceback: kept in exc, the frame,
        # the error and the request it holds made a cycle, freed by a full collection only.
        del exc


def _handler_failed_in_flows(request: Request, exc: Exception) -> bool:
    """Tell whether ``exc`` is an error handler's failure raised to the flows (logged), which
    no flow answered; the mark is taken off the request."""
    failed = getattr(request, "_failed_handler", None)
    if failed is None:
        return False
    request._failed_handler = None  # NOTE: it holds the request in its traceback: a cycle.
    return failed is exc


def refusal(
    plan: Plan, request: Request, exc: HTTPError, in_flows: bool = False
) -> Response | Effects:
    """Answer ``exc``, the router's refusal of ``request`` (404, 405, ...), as
    ``error_response`` does: at once with the default answer where no error handler can see
    it, else through ``error_response``."""
    if plan.error_handlers:
        if plan.error_handler_of(exc, request.route) is not None:
            return error_response(plan, request, exc, in_flows=in_flows)
        # NOTE: a 431 of the headers takes its place there, for its own handler; with none,
        # default_error() answers it the same way.
        refused = _headers_refusal(request)
        if refused is not None:
            return error_response(plan, request, refused, in_flows=in_flows)
    # PERF: no generator, no exception, no handler search: a WSGI 404 113,500 -> 67,700
    # instructions, with the router's and status_phrase()'s cuts (valgrind, 2026-12-05); with
    # all of that day's cuts, WSGI 404 21.2 -> 8.7 us, 405 38.3 -> 11.4, ASGI 404 24.1 -> 9.2,
    # 405 41.3 -> 12.9 (best of 7 x 5,000, old and new side by side; a hello 2.6 and 3.4).
    request._error_page = True
    return default_error(request, exc.status, exc.detail, exc.headers, own=True)


def _handler_answer(request: Request, handler: ErrorHandler, exc: Exception) -> Effects:
    """Answer ``exc`` with ``handler``: return its response and ``exc``, or ``None`` and the
    error the handler raised, which the default answer is for. An async handler's own
    ``GeneratorExit`` is raised as it was (carried to here, see ``_handling``)."""
    try:
        return (yield from _answer_with(request, handler, exc))
    except Ending as carrier:
        ended = carrier.ended
    # NOTE: out of the except clause, or the carrier would be its context.
    log_answered(request, exc, handler, 0, ended)
    try:
        raise ended
    finally:
        del ended  # NOTE: no cycle through this frame and the error's traceback.


def _answer_with(request: Request, handler: ErrorHandler, exc: Exception) -> Effects:
    """``_handler_answer``'s work; an async handler's own ``GeneratorExit`` comes out as
    ``Ending``."""
    raised = exc.__traceback__
    try:
        result = yield from call(_handling(handler.target, exc), request, exc)
        response = _error_value(request, result, exc, handler.key)
    except Ending:
        raise  # NOTE: an async handler's own GeneratorExit (_handling): _handler_answer's.
    except Exception as failure:
        if failure is exc:
            # NOTE: raised again (a bare raise): the frames it went through, ours holding it
            # and the request (a cycle), came before the route's own in its logged traceback.
            exc.__traceback__ = raised
        left = _left(failure)
        if left is None:
            _handler_failed(request, handler, exc, failure)
            return None, failure
        # NOTE: no failure of the handler's (one that read the body, say): the driver
        # answers it as any, with nothing logged but the bug a 500 handler answered
        # (status 0: the handler made no answer).
        log_answered(request, exc, handler, 0)
    except BaseException as ending:
        # NOTE: a 500 handler's bug, as above; a class handler's names what ended it.
        log_answered(request, exc, handler, 0, ending)
        raise
    else:
        log_answered(request, exc, handler, response.status)
        _answered(exc)
        return response, exc
    # NOTE: out of the except clause: raised in it, a group's own ClientDisconnect got the
    # group as its context, a cycle through the group's exceptions.
    raise left


def _handling(target: Colored, exc: Exception) -> Colored:
    """Return ``target`` to be called with ``exc`` as the exception being handled, as Flask and
    Starlette call their error handlers: ``sys.exc_info()`` and ``logger.exception()`` in it
    see ``exc`` (under ASGI they did for a def route's def handler alone; elsewhere "NoneType:
    None"), and an error it raises has ``exc`` as its ``__context__``."""
    fn = target.fn
    if target.is_async:

        async def handling_async(*args: Any, **kwargs: Any) -> Any:
            raised = exc.__traceback__
            try:
                raise exc
            except Exception:
                exc.__traceback__ = raised  # NOTE: as it was raised, no frame of ours added.
                try:
                    return await fn(*args, **kwargs)
                except GeneratorExit as own:
                    if closing_here(own):
                        raise  # NOTE: this coroutine's closing.
                    # NOTE: carried: thrown back in by the driver as it was, at a yield from
                    # it closed the core as a whole, and an async flow outside was left to its
                    # collection, unclosed ("ignored GeneratorExit"). _handler_answer raises
                    # it again as it was (review332).
                    raise Ending(own) from None

        return Colored(handling_async, True, target.offload)

    def handling(*args: Any, **kwargs: Any) -> Any:
        raised = exc.__traceback__
        try:
            raise exc
        except Exception:
            exc.__traceback__ = raised
            return fn(*args, **kwargs)

    return Colored(handling, False, target.offload)


def _left(failure: Exception) -> ClientDisconnect | None:
    """Return the ``ClientDisconnect`` that ``failure`` is, or that a group of them alone holds
    (a ``TaskGroup``'s, as out of a route handler: it was logged as the error handler's
    failure, and its 500 sent to the client that had left)."""
    if isinstance(failure, ClientDisconnect):
        return failure
    return None if isinstance(failure, HTTPError) else only_of(failure, ClientDisconnect)


def _handler_failed(
    request: Request, handler: ErrorHandler, exc: Exception, failure: Exception
) -> None:
    """Log what ``failure``, which ``handler`` raised as it answered ``exc``, says of it."""
    # NOTE: an HTTPError is an answer, from an error handler too (one that turns a KeyError
    # into a 404, say): logged, with its traceback, it read as a failure.
    if isinstance(failure, HTTPError):
        # NOTE: one with no status (see status_of): its default answer is then the bug,
        # logged as one. One that a read of the body raised (a body cut short, as a client
        # that left shows under some WSGI servers; past the limit) is no answer of the
        # handler's: cut off, as by a ClientDisconnect.
        status = 0 if _body_failed(request, failure) else status_of(failure) or 500
        log_answered(request, exc, handler, status)
    else:
        log_failed(request, handler, exc, failure)
    _answered(exc)


def _body_failed(request: Request, failure: HTTPError) -> bool:
    """Whether ``failure`` is the 4xx that a read of the request's body failed with."""
    if is_too_large(failure):
        return True
    meter = request._meter
    return meter is not None and meter.failed == (failure.status, failure.detail)


def _default_answer(plan: Plan, request: Request, exc: HTTPError, broken_before: bool) -> Effects:
    """The default answer to ``exc``, or the 500 of the app's bug if it makes none."""
    try:
        return default_error(request, answer_status(exc), exc.detail, exc.headers)
    except Exception as broken:
        if broken_before:
            # NOTE: the handler that answered the first one's bug raised another (one for
            # AttributeError raising an HTTPError that has no status): each answered the next,
            # to a RecursionError and a thousand lines logged.
            logger.error(
                "unhandled error in %s %s",
                logged_method(request),
                logged_path(request),
                exc_info=broken,
            )
            return last_resort(plan, request, broken)
        # NOTE: an HTTPError changed after it was made (a subclass that sets its detail, a
        # header added to exc.headers), past HTTPError()'s checks, into no answer: it raised
        # out of the app, a 500 and a traceback from the server with nothing logged by the app
        # (review161). It is the app's bug, logged and answered as one.
        return (yield from error_response(plan, request, broken, broken_before=True))


def _headers_refusal(request: Request) -> HTTPError | None:
    """Return the ``HTTPError`` (431) that reading ``request``'s headers raises, if any.

    It is raised once: the headers then hold their first lines, for the answer.
    """
    try:
        request.headers  # noqa: B018
    except HTTPError as refused:
        return refused
    return None


def _answered(exc: Exception) -> None:
    """Drop the traceback of ``exc`` if it is an ``HTTPError``: an answer, logged by nobody."""
    if isinstance(exc, HTTPError):
        # NOTE: an HTTPError the app keeps (a module's FORBIDDEN = HTTPError(403)) and raises
        # in each request gained that request's frames on its traceback at every raise: every
        # request it answered stayed alive with its body, 14 KB each for 10 KB bodies, and
        # the next error handler could reach an earlier user's locals (review142).
        exc.__traceback__ = None


def _error_value(request: Request, result: Any, exc: Exception, key: object) -> Response:
    """A plain value from an error handler keeps the error's status (no soft 404 or 500).

    A ``(value, status)`` tuple sets its own status, and still gets the error's headers
    (``Allow`` of a 405, say) where it sets none of that name. So does a ``Response`` with
    the error's status (a page rendered with ``status=405``); another status is its own.
    """
    if isinstance(result, Response):
        # NOTE: a copy: an error page the app keeps (a module's constant) kept the first 405's
        # Allow, and every later 405 sent it, for other paths (review141); and the flows add
        # one request's own headers (a session cookie) to the response they are given.
        # NOTE: a file is settled as a handler's is: a fallback page sent with 200 answered no
        # 304 or range. One with an error's status is sent whole (negotiate_file leaves it).
        response = negotiate_file(result, request) if result.file_info else copied(result)
        if isinstance(exc, HTTPError) and response.status == exc.status:
            _add_headers(response, exc)
        return response
    response = to_response(result)
    if isinstance(exc, HTTPError):
        if not isinstance(result, tuple):
            response.status = answer_status(exc)
        _add_headers(response, exc)
    elif key == 500 and not isinstance(result, tuple):
        response.status = 500
    return response


def _add_headers(response: Response, exc: HTTPError) -> None:
    # SPEC: RFC 9110 15.5.6 and 15.5.2: a 405 MUST carry Allow, a 401 WWW-Authenticate.
    for name, value in exc.headers.items():
        response.headers.setdefault(name, value)
