"""Calling app code in its colour, and answering the errors it raises.

``call`` yields the effect a handler, an error handler or a flow step needs; ``error_response``
turns an exception into a registered error handler's answer or the default error body, which
is JSON or plain text by the client's ``Accept``; ``client_left`` answers a client that went
away while its body was read. What is logged of the errors is ``_error_logs``'.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ._buffer import is_too_large
from ._effects import Colored, Effects, Ending, Offload, closing_here
from ._emission import ACCEPT_VARIES, NOSNIFF, Header, negotiate_file, outgoing
from ._error_logs import log_answered, log_failed, log_unhandled
from ._errors import (
    ClientDisconnect,
    HTTPError,
    answer_status,
    only_of,
    raise_own,
    report_unhandled,
    status_of,
    status_phrase,
)
from ._media import JSON, TEXT, encode_json
from ._parsing import header_value, prefers_json
from ._port_hints import port_hint
from ._request import logged_method, logged_path
from ._response import Response, StreamBody
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
        return _last_resort(plan, request, exc)
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
            return _last_resort(plan, request, broken)
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


def handlers_failed(plan: Plan, request: Request, exc: Exception) -> Response:
    """Answer ``exc``, which an error handler raised where no error handler may answer it.

    A sync error handler's own ``CancelledError`` reaches the driver past the handlers (the
    core takes it for a cut), which answer it then; raised there again, it is logged as any
    error handler's failure and the default 500 goes out.
    """
    logger.error(
        "error handler failed for %s %s", logged_method(request), logged_path(request), exc_info=exc
    )
    return _last_resort(plan, request, exc)


def to_send(
    plan: Plan, request: Request, response: Response
) -> tuple[Response, list[Header], bytes | StreamBody | None]:
    """Return the response to send, with its headers and body as ``outgoing()`` gives them;
    one that can't be sent is replaced (see ``unsendable``)."""
    try:
        headers, body = outgoing(response, request.method)
    except Exception as exc:
        response = unsendable(plan, request, exc, response)
        headers, body = outgoing(response, request.method)
    return response, headers, body


def unsendable(plan: Plan, request: Request, exc: Exception, response: Response) -> Response:
    """Answer ``exc``, which ``outgoing()`` raised for the app's ``response`` (a stream that is
    no iterable, say): logged, and the default 500 goes out in its place, with the headers of
    ``response`` that say nothing of its body and may label any 500 (CORS's, ``Vary``, a
    request ID): not its caching, nor a cookie, which a handler's error's 500 lacks too.

    No error handler answers it: the response has left the handlers and the flows, and
    another of the app's own could fail the same way.
    """
    logger.error(
        "unhandled error in %s %s: its response can't be sent",
        logged_method(request),
        logged_path(request),
        exc_info=exc,
    )
    # NOTE: the flows had labelled the response that can't be sent: a page got a CORS error
    # for the 500 that replaced it, where any other 500 reads as one.
    answer = _last_resort(plan, request, exc)
    for name, value in response.headers.items():
        if _kept(name):
            answer.headers.add(name, value)
    return answer


# NOTE: what describes the body not sent (or where else to go), and the 500's own header;
# and what says something of that response that is wrong of a 500, which any other 500 (a
# handler's error's) lacks: its caching (a CDN kept the 500 an hour; a CDN's own or nginx's
# too), a retry time, a challenge, its methods, a refresh, its preloads; a body a proxy sends
# in its place (nginx's X-Accel-Redirect, X-Sendfile); and a change of the client's state
# (a cookie: a session saved, a sign-in made by a request that failed; cleared site data; an
# authentication's next nonce). Also that response's own offers, as Allow is: a 426's Upgrade,
# a 415's Accept-Patch; and nginx's buffering of its body (a stream's "no").
_NOT_KEPT = frozenset(
    {
        "etag", "last-modified", "accept-ranges", "location", "x-content-type-options",
        "expires", "age", "pragma", "surrogate-control", "x-accel-expires", "retry-after",
        "www-authenticate", "allow", "refresh", "link", "x-accel-redirect", "x-sendfile",
        "x-lighttpd-send-file", "digest", "repr-digest", "set-cookie", "clear-site-data",
        "authentication-info", "upgrade", "accept-patch", "x-accel-buffering",
    }
)  # fmt: skip


def _kept(name: str) -> bool:
    # NOTE: a flow's security policy is no header of the body.
    if name.startswith("content-"):
        return name.startswith("content-security-policy")
    # SPEC: RFC 9213: a CDN's own Cache-Control is named <cdn>-CDN-Cache-Control.
    return name not in _NOT_KEPT and not name.endswith("cache-control")


def _last_resort(plan: Plan, request: Request, exc: Exception) -> Response:
    report_unhandled(exc)  # NOTE: the last resort; not an error a 500 handler answered.
    detail = None
    if plan.app.debug:
        # NOTE: a lone surrogate (a name decoded with surrogateescape, in a message) made the
        # page's encode raise out of the app (review161): written as "\udc80", as repr() would.
        text = "".join(traceback.format_exception(exc))
        # NOTE: what to write instead, as the log line says (request.form["x"] kept from Flask).
        hint = port_hint(exc)
        if hint:
            text = f"{text}\n{hint}\n"
        detail = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return default_error(request, 500, detail, {})


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


def default_error(
    request: Request,
    status: int,
    detail: str | None,
    headers: Mapping[str, str],
    own: bool = False,
) -> Response:
    """Return the default error body: JSON when the client accepts JSON, else plain text.

    ``own`` tells that ``headers`` are the router's (a 405's ``Allow``): lower case, checked,
    and none of those this answer sets.
    """
    try:
        accept = header_value(request.headers, "accept")
    except HTTPError as refused:
        # NOTE: this answer read the headers first (a 404 with no flow that read them): their
        # 431 escaped the app, a 500 and a traceback from the server (review141). It is the
        # answer, as when a flow reads them first; the headers now hold the first lines.
        return default_error(request, refused.status, refused.detail, refused.headers)
    detail = detail or status_phrase(status)
    # PERF: no JSON asked for without "json" in Accept (see prefers_json): a browser's Accept
    # read in 0.16 us, not 4.1 (Firefox's), text/html 1.25 -> 0.08 (timeit, 2026-12-05).
    if accept and "json" in accept.lower() and prefers_json(accept):
        body, media_type = encode_json({"status": status, "detail": detail}), JSON
        labels: tuple[Header, ...] = (ACCEPT_VARIES,)
    else:
        body, media_type = detail.encode("utf-8"), TEXT
        # NOTE: a detail may quote the client (a form field's name, an app's f"no note
        # {name}"): loaded by <script src>, a text/plain body runs as a script unless it says
        # nosniff (Fetch, X-Content-Type-Options), and Internet Explorer rendered it as HTML.
        # Go's http.Error says it too.
        labels = (NOSNIFF, ACCEPT_VARIES)
    # NOTE: Vary: the body is JSON or text by the request's Accept, and a 404 or a 405 is
    # cacheable: a shared cache gave the JSON 404 it kept to a browser (Falcon says it too).
    if headers and not own:
        response = Response(body, status, headers, media_type)
        if NOSNIFF in labels:
            response.headers.setdefault(*NOSNIFF)
        _vary_on_accept(response)
        return response
    # PERF: the framework's own headers, put in unchecked as Response puts its type, and
    # sent by outgoing()'s fast path: through headers.setdefault() and head_list(), a 404
    # under WSGI took 19.1 -> 24.9 us (2026-12-05).
    response = Response(body, status, None, media_type)
    items = response._headers._list
    if headers:
        # PERF: the router's, first, as Response puts them: a 405 with no Headers checks, 4
        # names and values, nor 3 lists made again (cProfile: 144 -> 85 calls, 2026-12-05).
        items[:0] = headers.items()
    items.extend(labels)
    return response


def _vary_on_accept(response: Response) -> None:
    """Add ``Accept`` to the ``Vary`` of ``response``, whose headers an error gave."""
    vary = response.headers.get("vary")
    if vary is None:
        response.headers["Vary"] = "Accept"
        return
    names = {name.strip().lower() for name in vary.split(",")}
    if not names & {"accept", "*"}:
        response.headers["Vary"] = f"{vary}, Accept"


def client_left(request: Request, exc: ClientDisconnect) -> Response:
    """The answer to a ``ClientDisconnect`` that reached the driver: a default 400.

    WSGI sends it even when the client has gone (PEP 3333 wants a response); ASGI sends it
    unless its body source saw ``http.disconnect``. No traceback is logged. A ``ClientDisconnect``
    raised by app code with no message still says what happened (as JSON to a client that
    accepts it).
    """
    try:
        detail = str(exc)
    except Exception:
        detail = ""  # NOTE: an app's own subclass whose __str__ fails: no reason to say.
    # NOTE: a lone surrogate (a name decoded with surrogateescape) made the answer's encode
    # raise out of the app: written as "\udc80", as repr() would.
    detail = detail.encode("utf-8", "backslashreplace").decode("utf-8")
    return default_error(request, 400, detail or "the client disconnected", {})
