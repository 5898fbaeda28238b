"""What the app logs of the errors it meets, each line naming the request: a bug it answered
or could not answer (``log_unhandled``, ``log_answered``), an error handler's own failure with
the bug it answered chained (``log_failed``), a request the server cancelled (``cut_off``), a
stream that failed; and the mark that lets a server's logger leave out its own traceback of
what was logged here (``ReportedTracebacks``).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ._errors import HTTPError, is_asyncio_cancellation, report_unhandled
from ._port_hints import port_hint
from ._request import Request, logged_method, logged_path

if TYPE_CHECKING:
    from ._plan import ErrorHandler

logger = logging.getLogger("microweb")
# NOTE: set on what the app logged itself, naming the request (a cancellation that cut_off()
# reported, a stream's error), so that a server's logger can leave out its own traceback of
# it (microweb serve's servers do). An attribute: most exceptions take no weak reference.
_REPORTED = "_microweb_reported"


def log_unhandled(request: Request, exc: Exception) -> None:
    logger.error(
        "unhandled error in %s %s%s",
        logged_method(request),
        logged_path(request),
        _hinted(exc),
        exc_info=exc,
    )


def _hinted(exc: Exception) -> str:
    hint = port_hint(exc)
    return f": {hint}" if hint else ""


def log_answered(
    request: Request,
    exc: Exception,
    handler: ErrorHandler,
    status: int,
    ending: BaseException | None = None,
) -> None:
    """Log ``exc``, a bug that a 500 handler answered, or a class handler with a 5xx or
    not at all (``status`` 0: the client left, the server cancelled the request, or the
    handler raised ``ending``, a ``SystemExit`` say, which goes on to the server)."""
    if isinstance(exc, HTTPError):
        return
    if handler.key == 500:
        # NOTE: logged once its handler has run, as with no handler: logged before it, then
        # again as the context of the handler's failure, its traceback was in the log twice.
        log_unhandled(request, exc)
    elif status == 0:
        # NOTE: its answer, a 500 as likely as not, never came: the bug left no line in the
        # log, where a 500 handler's cut off the same way is logged (review210).
        logger.error(
            "unhandled error in %s %s, not answered: %r %s",
            logged_method(request),
            logged_path(request),
            handler.target.fn,
            _not_answered(ending),
            exc_info=exc,
        )
    elif status >= 500:
        # NOTE: a catch-all handler (Exception -> a JSON 500) hid every bug's traceback,
        # where a 500 handler's error is logged (review140); Starlette logs both. One that
        # raises HTTPError(500) hid it too (review141).
        logger.error(
            "unhandled error in %s %s, answered %d by %r",
            logged_method(request),
            logged_path(request),
            status,
            handler.target.fn,
            exc_info=exc,
        )
    if ending is not None:
        _hide_context(ending, exc)


def _hide_context(ending: BaseException, exc: Exception) -> None:
    """Leave ``exc``, logged just now, out of the traceback shown for ``ending``, which an
    error handler raised as it answered it and which goes on to the server; ``exc`` stays
    its ``__context__``, as an ``except`` clause leaves it."""
    # NOTE: the server logs ``ending`` with its traceback (Uvicorn's "Exception in ASGI
    # application"): the bug, shown as its context, was in the log twice under ASGI, once
    # under microweb serve's Waitress, which raises what escapes "from None".
    for error in _shown_chain(ending):
        if error.__cause__ is None and error.__context__ is exc:
            error.__suppress_context__ = True
            return


def _not_answered(ending: BaseException | None) -> str:
    """Say why an error handler made no answer: cut off, or what it raised."""
    if ending is None or is_asyncio_cancellation(ending):
        return "was cut off"
    # NOTE: a SystemExit (a sys.exit() in the handler) or a KeyboardInterrupt, raised on to
    # the server as a route handler's is: "cut off" said the server or the client ended it.
    return f"raised {type(ending).__qualname__}"


def log_failed(request: Request, handler: ErrorHandler, exc: Exception, failure: Exception) -> None:
    """Log ``failure``, which ``handler`` raised as it answered ``exc``, with ``exc`` chained."""
    shown = _shown_chain(failure)
    linked = None
    if not any(error is exc for error in shown):
        last = shown[-1]
        if _chains_to(last, exc):
            # NOTE: answered outside an except clause (a WSGI def handler's error, an async
            # def handler's, with no flows), the bug it answered was logged by nobody: chained
            # as a flow's error is (at the end of the failure's own chain, the StopIteration
            # of an async def handler's RuntimeError, say), its traceback comes first.
            last.__context__ = linked = exc
        else:
            # NOTE: the failure's chain ends in a "raise ... from None": the bug it answered
            # is logged on its own, once.
            log_unhandled(request, exc)
    try:
        # NOTE: the request named, as in every other error logged: "error handler <function
        # bad at 0x...> failed" alone did not say which request met it.
        # NOTE: with what to raise for another framework's HTTP error (a ported handler's
        # abort(404)), as a route handler's line says.
        logger.error(
            "error handler %r failed in %s %s%s",
            handler.target.fn,
            logged_method(request),
            logged_path(request),
            _hinted(failure),
            exc_info=failure,
        )
    finally:
        if linked is not None:
            # NOTE: unlinked once logged: an error object the handler raised again (a
            # module's constant) kept it, the next request's was chained after it, and so on:
            # each log held every earlier request's error, the object all their requests.
            shown[-1].__context__ = None


def _shown_chain(error: BaseException) -> list[BaseException]:
    """Return ``error`` and the errors its traceback shows as its causes or contexts."""
    chain = [error]
    # PERF: ids, alive in the chain: each step looked back over the chain, 0.4 s of CPU for
    # one of 5,000 errors, where the log's traceback of it took 0.05 s (2026-12-05).
    seen = {id(error)}
    while True:
        last = chain[-1]
        shown = last.__cause__ or (None if last.__suppress_context__ else last.__context__)
        if shown is None or id(shown) in seen:
            return chain
        chain.append(shown)
        seen.add(id(shown))


def _chains_to(last: BaseException, exc: BaseException) -> bool:
    """Tell whether ``exc`` may become the shown context of ``last``, which has none."""
    if last.__cause__ is not None or last.__context__ is not None or last.__suppress_context__:
        return False
    # NOTE: as Python checks where it sets a context: no cycle through the contexts of exc.
    # PERF: ids, as in _shown_chain (with a list, the two walks took 0.4 s of CPU for a chain
    # of 5,000 errors); each is alive as the context of the one before.
    seen: set[int] = set()
    context: BaseException | None = exc
    while context is not None and id(context) not in seen:
        if context is last:
            return False
        seen.add(id(context))
        context = context.__context__
    return True


def cut_off(request: Request, cancel: BaseException, what: str) -> None:
    """Report in one line that the server cancelled ``request`` (``cancel``) during ``what``.

    A server cancels a request's task when it gives up on it: Uvicorn at the end of its grace
    period. The cancellation is no error of the app's and its traceback says nothing of it.
    """
    logger.warning(
        "%s %s cut off %s: the server cancelled it",
        logged_method(request),
        logged_path(request),
        what,
    )
    mark_reported(cancel)


def stream_failed(request: Request, exc: BaseException) -> None:
    """Log that ``request``'s stream raised ``exc`` after its headers went out.

    The driver re-raises it: that is how a server learns to cut the connection, so that the
    client can tell the response is incomplete. The server's own record of it is then
    left out under ``microweb serve`` (``ReportedTracebacks``).
    """
    logger.error(
        "error while streaming %s %s", logged_method(request), logged_path(request), exc_info=exc
    )
    mark_reported(exc)


def unsent_stream_failed(request: Request, exc: Exception) -> None:
    """Log that closing the stream of ``request``'s answer with no body (HEAD, 204, 304) raised
    ``exc``, and hand it to the test client watching; the answer is whole, so the driver goes
    on and ends it."""
    # NOTE: raised, it became the 500 of a HEAD whose GET was a 200 under WSGI, and under
    # ASGI a response the server cut after its headers, with no line of microweb's.
    logger.error(
        "error while closing the unsent stream of %s %s",
        logged_method(request),
        logged_path(request),
        exc_info=exc,
    )
    # NOTE: and raised to a test client that asks for the app's errors, as a failed
    # after-response callback is: only logged, a test of the HEAD passed in silence.
    report_unhandled(exc)


def mark_reported(exc: BaseException) -> None:
    """Mark ``exc`` as logged already (or as no error of the app's): see ``ReportedTracebacks``."""
    # NOTE: in the instance's __dict__ (every exception has one), past its __setattr__: an
    # error class that refuses new attributes (attrs' frozen ones) raised its own error here,
    # in place of the app's, which the server then logged as a second failure.
    vars(exc)[_REPORTED] = True


def was_reported(exc: BaseException) -> bool:
    """Return whether ``exc`` is a cancellation or a stream's error that the app logged."""
    return vars(exc).get(_REPORTED) is True


class ReportedTracebacks(logging.Filter):
    """Leaves out a server's record of an error that the app logged itself.

    Uvicorn logs each cancellation and each error that leaves the app with a full traceback
    ("Exception in ASGI application"), Waitress each error of a response's iterable
    ("Exception while serving"); the app has logged its own line for it, naming the request.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Return whether ``record`` is to be logged: all but such a record."""
        exc = record.exc_info[1] if record.exc_info else None
        return exc is None or not was_reported(exc)


REPORTED_TRACEBACKS = ReportedTracebacks()
