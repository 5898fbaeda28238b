"""Exceptions that carry an HTTP status, and where an error no handler answered is reported."""

from __future__ import annotations

import builtins
import logging
import sys
from collections.abc import Mapping
from concurrent.futures import CancelledError
from contextvars import ContextVar
from dataclasses import dataclass
from http import HTTPStatus
from types import TracebackType
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

from ._mapping_checks import check_header


def is_asyncio_cancellation(exc: BaseException) -> bool:
    """Tell whether ``exc`` is an ``asyncio.CancelledError``.

    Told by the class's name and module: the core does not import asyncio (the sans-IO rule).
    """
    return any(
        cls.__name__ == "CancelledError" and cls.__module__ == "asyncio.exceptions"
        for cls in type(exc).__mro__
    )


def own_cancellation(error: BaseException) -> CancelledError:
    """Return what app code's own ``CancelledError`` is to its request: an error like others.

    A cancellation that the server did not make (a task the code cancelled, then awaited; one
    that sync code raised) becomes ``concurrent.futures.CancelledError``, an ``Exception`` that
    the error handlers answer, with ``error`` as its cause, under both interfaces.
    """
    own = CancelledError(*error.args)
    own.__cause__ = error
    return own


def raise_own_cancellation(exc: BaseException) -> None:
    """Raise the error ``exc`` is, if it is asyncio's ``CancelledError`` raised by sync app
    code called in the request's own thread; return for anything else, which the caller
    re-raises as it is.

    No server cancels a call made in that thread (its cancellation comes in at a ``yield`` of
    the core), so this one is the code's own: taken for a cut, it closed the flows, which then
    never saw the 500 it became.
    """
    if is_asyncio_cancellation(exc):
        raise own_cancellation(exc) from exc


def own_stop(stop: StopIteration) -> RuntimeError:
    """Return what sync app code's ``StopIteration`` (a ``next()`` past the end) is to its
    request: a ``RuntimeError`` from it, as Python makes of one that leaves a generator or a
    coroutine (PEP 479), so an ``async def`` handler's and a flow's.

    The same error whatever ran the code: the ASGI pool (a future refuses a ``StopIteration``),
    the core's generators, or the WSGI driver's plain call.
    """
    error = RuntimeError("sync app code raised StopIteration")
    error.__cause__ = stop
    return error


def raise_own(exc: BaseException) -> None:
    """Raise what ``exc`` is to its request, as ``raise_own_cancellation`` does, or
    ``own_stop``'s error for a ``StopIteration``; return for anything else."""
    raise_own_cancellation(exc)
    if isinstance(exc, StopIteration):
        raise own_stop(exc) from exc


def status_phrase(status: int) -> str:
    """Return the reason phrase of ``status`` (``"Unknown"`` for codes without one)."""
    return _PHRASES.get(status, "Unknown")


# PERF: a dict, not HTTPStatus(status), an Enum call: HTTPError(404) 1.7 -> 1.2 us (timeit,
# 2026-12-05), made for every 404 and 405.
_PHRASES = {status.value: status.phrase for status in HTTPStatus}


class HTTPError(Exception):
    """Stop handling the request and answer with an HTTP error status.

    Args:
        status: The status code, 400 to 599.
        detail: A short message for the client; the status phrase when omitted.
        headers: Extra response headers (``Allow``, ``WWW-Authenticate``, ...), checked here
            as ``Response.headers`` checks them.

    Raises:
        ValueError: If ``status`` is not 4xx or 5xx, or a header is invalid (see ``Headers``),
            so the mistake shows where the error is raised, not while answering it.
        TypeError: If ``detail`` or a header value is not a ``str``.
        ValueError: If ``detail`` holds a lone surrogate, which no answer can carry.

    Attributes:
        status: The status code (``int``).
        detail: The message (``str``): ``detail`` as given, or the status phrase.
        headers: The extra headers (a ``dict``, empty when none were given).
    """

    def __init__(
        self,
        status: int,
        detail: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        # NOTE: a float 404.0 compared fine and went out as the ASGI status 404.0; an
        # HTTPStatus member is an int, kept as a plain one for handlers and the JSON body.
        if isinstance(status, bool) or not isinstance(status, int) or not 400 <= status <= 599:
            raise ValueError(f"HTTPError status must be 4xx or 5xx, got {status!r}")
        if detail is not None and not isinstance(detail, str):
            # NOTE: a dict detail (FastAPI's habit) went out as JSON to JSON clients and
            # crashed the plain-text answer past the 500 handler: refused here instead.
            raise TypeError(
                f"HTTPError detail must be a str, got {type(detail).__name__}: for a "
                "structured error body, return Response.json(value, status) instead"
            )
        if detail is not None and not detail.isascii():
            _check_utf8(detail)
        self.status = int(status)
        self.detail = detail if detail is not None else status_phrase(status)
        self.headers = dict(headers) if headers else {}
        for name, value in self.headers.items():
            check_header(name, value)
        super().__init__(status, self.detail)

    def __repr__(self) -> str:
        return f"HTTPError({self.status}, {self.detail!r})"


def refused(status: int, headers: dict[str, str] | None = None) -> HTTPError:
    """Return the ``HTTPError`` of ``status`` that the router answers a request with (404, or
    405 with its ``Allow``): the one ``HTTPError(status, headers=headers)`` makes, with none of
    its checks, which the router's own values pass."""
    # PERF: 1.5 -> 0.95 us for a 404's (timeit, 2026-12-05).
    detail = status_phrase(status)
    error = HTTPError.__new__(HTTPError, status, detail)
    error.status, error.detail, error.headers = status, detail, headers or {}
    return error


def _check_utf8(detail: str) -> None:
    try:
        detail.encode("utf-8")
    except UnicodeEncodeError as exc:
        # NOTE: the default answer's encode raised it past every handler: a 500 and a
        # traceback from the server, with no line logged by the app (review160).
        raise ValueError(
            f"HTTPError detail holds {detail[exc.start : exc.end]!r}, a lone surrogate, which "
            "UTF-8 cannot encode (a name decoded with surrogateescape, say): put its repr() "
            "in the detail"
        ) from None


def status_of(exc: HTTPError) -> int | None:
    """Return the status of ``exc`` as a plain ``int`` (an ``IntEnum`` member's value), or
    ``None`` where it gives no ``int`` of 400 to 599: a subclass whose ``__init__`` skipped
    HTTPError's (no status), or whose ``status`` is a property that raises or gives another
    type or number. Its default answer, which reads it again, is then the bug.
    """
    # NOTE: read with getattr, only an AttributeError was caught: a property's ValueError,
    # raised in the error handlers' lookup, left the app (a 500 and a traceback from the
    # server, nothing logged by the app); a str status failed as it was compared with 500.
    try:
        status = _plain(exc.status)
    except Exception:
        return None
    return status if status is not None and 400 <= status <= 599 else None


def answer_status(exc: HTTPError) -> int:
    """Return the status of ``exc`` for its answer, as a plain ``int``.

    Raises:
        ValueError: For an ``int`` that is no 4xx or 5xx (a subclass's ``status`` property):
            the app's bug. Another type is left to ``Response``, which refuses it.
    """
    status = exc.status
    plain = _plain(status)
    if plain is None:
        return status
    # NOTE: HTTPError() checks its status, a subclass's property is past it: one of 200 went
    # out as a 200 with the error's body ("Not Found"), nothing logged.
    if not 400 <= plain <= 599:
        raise ValueError(f"HTTPError status must be 4xx or 5xx, got {status!r}")
    return plain


def _plain(status: object) -> int | None:
    """Return ``status`` as a plain ``int`` if it is one of any ``int`` class but ``bool``."""
    # NOTE: an IntEnum member (http.HTTPStatus's, which a subclass set after HTTPError's
    # __init__) was taken for no status: the app's error_handler(404) never saw its 404, and
    # HTTPStatus.OK passed the range check and went out as a 200.
    if isinstance(status, bool) or not isinstance(status, int):
        return None
    return int(status)


class ClientDisconnect(Exception):
    """The client went away before the request body was read to its end."""


E = TypeVar("E", bound=BaseException)
_BUILTIN_GROUP: Any = getattr(builtins, "BaseExceptionGroup", None)


def only_of(exc: BaseException, kind: type[E]) -> E | None:
    """Return the first ``kind`` in ``exc`` when ``exc`` is an exception group of ``kind``
    only (an ``asyncio.TaskGroup``'s whose task saw the client leave), else ``None``."""
    # NOTE: exception groups are new in Python 3.11; on 3.10, anyio's task groups raise those
    # of the exceptiongroup backport, looked for only if something imported it.
    group_type = _BUILTIN_GROUP or getattr(
        sys.modules.get("exceptiongroup"), "BaseExceptionGroup", None
    )
    if group_type is None or not isinstance(exc, group_type):
        return None
    group: Any = exc
    if group.split(kind)[1] is not None:
        return None
    while isinstance(group, group_type):
        group = group.exceptions[0]
    found: E = group
    return found


@dataclass(frozen=True, slots=True)
class KeptError:
    """An error a read of the request body raised, kept to be raised again by later reads.

    The body is gone once a read failed: a later read must get the same answer (a 413, a
    ``ClientDisconnect``), not a 500 for a body "already consumed". It is raised again with the
    traceback it first had: raised as it is, the exception would keep the frames of every
    raise before, one more set at each call.
    """

    error: Exception
    traceback: TracebackType | None

    @classmethod
    def of(cls, error: Exception) -> KeptError:
        """Keep ``error``, just caught, with its traceback as it is now."""
        return cls(error, error.__traceback__)

    def raise_again(self) -> NoReturn:
        """Raise the kept error again, from its first traceback."""
        try:
            raise self.error.with_traceback(self.traceback)
        finally:
            # NOTE: this frame goes into the error's traceback: holding the error through
            # self, it made a cycle that kept the request alive until a full collection.
            del self


class InterfaceWarning(RuntimeWarning):
    """Part of the app needs the other interface: WebSocket routes in an app run under WSGI.

    ``app.as_wsgi()`` issues it once per app. ``TestClient`` ignores it, since a test that
    picks WSGI does so on purpose; elsewhere filter it as any warning:
    ``warnings.filterwarnings("ignore", category=microweb.InterfaceWarning)``.
    """


# NOTE: where the errors that no error handler answered (the last-resort 500s, failed
# after-response callbacks) go, besides the log: a TestClient with raise_server_exceptions=True
# sets a list around each request, and raises what it finds there. A context variable, as the
# drivers carry the context to where app code runs (the WSGI app loop, the ASGI thread pool).
unhandled_errors: ContextVar[list[BaseException] | None] = ContextVar(
    "microweb_unhandled_errors", default=None
)


def report_unhandled(exc: BaseException) -> None:
    """Hand ``exc``, which no error handler answered, to the test client watching, if any."""
    watching = unhandled_errors.get()
    if watching is not None:
        watching.append(exc)


def log_failure(message: str, *args: object, exc_info: bool = False) -> None:
    """Log why the app did not start, as ``logger.error()`` would, at any log level.

    ``--log-level critical`` hid it: the command ended with status 3 and said nothing.
    """
    logger = logging.getLogger("microweb")
    error = sys.exc_info() if exc_info else None
    # NOTE: the caller's file, line and function, as logger.error() finds them: the record
    # had none, and a format with %(pathname)s:%(lineno)d %(funcName)s printed ":0 None".
    caller = sys._getframe(1)
    code = caller.f_code
    record = logger.makeRecord(
        logger.name,
        logging.ERROR,
        code.co_filename,
        caller.f_lineno,
        message,
        args,
        error,
        code.co_name,
    )
    del caller
    # NOTE: handle() skips the logger's level (not its filters, nor a handler's level).
    logger.handle(record)


class OtherSpelling:
    """A name other frameworks give what a class here spells otherwise: reading or setting it
    raises ``AttributeError`` with ``message``, which says what to write.

    A descriptor of its own for each such name: set on an instance of a subclass (which has a
    ``__dict__``), the value was silently kept and never read; and a ``__getattr__`` would be
    called for every missing name, and for a property whose getter raised AttributeError,
    whose own error it hid.
    """

    def __init__(self, name: str, message: str) -> None:
        self.name, self.message = name, message

    def _refuse(self, instance: object) -> NoReturn:
        raise AttributeError(self.message, name=self.name, obj=instance)

    def __get__(self, instance: object, owner: type | None = None) -> Any:
        if instance is None:
            return self
        self._refuse(instance)

    def __set__(self, instance: object, value: object) -> None:
        self._refuse(instance)


class OtherName(OtherSpelling):
    """An ``OtherSpelling`` of an ``App``'s or a ``Router``'s that an instance may be given as
    an attribute of its own (``app.config = {...}``, or ``self.config = ...`` in a subclass's
    ``__init__``), which its own code reads: it worked before the names were refused, and a
    plugin may set one. Read or deleted unset, it is refused."""

    def __get__(self, instance: object, owner: type | None = None) -> Any:
        if instance is None:
            return self
        try:
            return vars(instance)[self.name]
        except KeyError:
            self._refuse(instance)

    def __set__(self, instance: object, value: object) -> None:
        vars(instance)[self.name] = value

    def __delete__(self, instance: object) -> None:
        if vars(instance).pop(self.name, self) is self:
            self._refuse(instance)


def refuse_other_spellings(
    cls: type, spellings: Mapping[str, str], kind: type[OtherSpelling] = OtherSpelling
) -> None:
    """Put on ``cls`` a ``kind`` of refusal for each other framework's name in ``spellings``,
    whose message says what to write here (its value)."""
    for name, spelling in spellings.items():
        message = (
            f"{cls.__name__!r} object has no attribute {name!r} (another framework's name): "
            f"write {spelling}"
        )
        setattr(cls, name, kind(name, message))


if not TYPE_CHECKING:
    # NOTE: Starlette's name, read by a ported exception handler: Python's bare "has no
    # attribute 'status_code'" named no way to write it. Put on the class here, out of its
    # body: a property there was read as NoReturn by type checkers (exc.status_code passed
    # mypy --strict), and shown in the API reference as one of HTTPError's attributes.
    HTTPError.status_code = OtherSpelling(
        "status_code", "an HTTPError has no 'status_code' (Starlette's name): read exc.status"
    )
