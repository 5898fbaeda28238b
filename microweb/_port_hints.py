"""What a port writes instead of what raised an unhandled error, said in its log line, on the
debug page and in a note on the error a test client raises (``port_hint``): another
framework's HTTP exception, a ``Request`` method read as Flask's attribute of the same name,
Starlette's ``request.url.path``, another framework's keyword given to a ``Response`` or an
``HTTPError``, an ``HTTPError`` raised in a task group's task (a group of them only).

Only on the error path: nothing is put in front of the names and calls that work.
"""

from __future__ import annotations

import inspect
import linecache
import re
import sys
from types import FrameType, ModuleType, TracebackType

from ._errors import HTTPError, is_asyncio_cancellation, only_of
from ._request import Request


def port_hint(exc: Exception) -> str:
    """Say what a port writes instead of what raised ``exc``, an unhandled error; else ``""``.

    Another framework's HTTP exception, a ``Request`` method used as Flask's attribute of the
    same name (``request.form["x"]``, ``request.json.get("x")``) or Starlette's
    ``request.url.path``: Python's own message named no ``Request`` and said nothing of why.
    Only on the error path: the names stay plain methods, with nothing in front of them.
    Never raises, but a ``BaseException`` of the app's code it reads that is no ``Exception``
    or ``CancelledError`` (a ``KeyboardInterrupt``, a ``SystemExit``), as a handler's goes on.
    """
    try:
        return (
            _foreign_http_error(exc)
            or _misused_attribute(exc)
            or _foreign_keyword(exc)
            or _grouped_http_error(exc)
        )
    except BaseException as exc_of_read:
        if not isinstance(exc_of_read, Exception) and not is_asyncio_cancellation(exc_of_read):
            raise
        # NOTE: the app's error is what counts: its str() or its obj (a property of a
        # subclass's) raised out of the log line, which was lost, and the error in the error
        # path went on to the server in place of the 500. A CancelledError raised by a read is
        # the app's own (a task's cancellation never arrives in sync code), an error as out of
        # a handler. Any other BaseException goes on, as out of a handler: Ctrl-C, sys.exit(),
        # a GeneratorExit, an app's own, such as gevent's Timeout, which does arrive in sync
        # code that waits (a property's query): caught, it was lost (review402).
        return ""


# NOTE: what Python says of a method subscripted, iterated or asked for an attribute; an
# attribute of a bound method is looked up on its function.
_METHOD_MISUSE = re.compile(r"'(method|function)' object (is not|has no|does not)|type 'method'")


def _misused_attribute(exc: Exception) -> str:
    """Say how to use the ``Request`` attribute that ``exc`` met in the line that raised it."""
    if not isinstance(exc, (TypeError, AttributeError)) or exc.__traceback__ is None:
        return ""
    tb: TracebackType = exc.__traceback__
    while tb.tb_next is not None:
        tb = tb.tb_next
    line = linecache.getline(tb.tb_frame.f_code.co_filename, tb.tb_lineno)
    for name, attribute in _request_attributes(tb.tb_frame, line):
        if attribute == "url" and isinstance(getattr(exc, "obj", None), str):
            return (
                f"{name}.url is a str, the whole URL: its parts are {name}.path, "
                f"{name}.query, {name}.scheme and {name}.host"
            )
        if inspect.isfunction(inspect.getattr_static(Request, attribute, None)) and (
            _METHOD_MISUSE.search(str(exc))
        ):
            return f"{name}.{attribute} is a method: call it, {_called(name, attribute)}"
    return ""


def _called(name: str, method: str) -> str:
    """Spell the call of ``name.method``, with its async twin's where it has one."""
    if hasattr(Request, f"a{method}"):
        return f"{name}.{method}() (await {name}.a{method}() in an async def handler)"
    if method.startswith("a") and hasattr(Request, method[1:]):
        return f"await {name}.{method}()"
    return f"{name}.{method}()"


def _request_attributes(frame: FrameType, line: str) -> list[tuple[str, str]]:
    """Return each ``(name, attribute)`` of ``name.attribute`` in ``line`` that is not called,
    where ``name`` is a local of ``frame`` holding a ``Request``."""
    found: list[tuple[str, str]] = []
    for name, value in list(frame.f_locals.items()):
        # NOTE: type(), not isinstance(): a local's __class__ may be anything (a proxy's).
        if not issubclass(type(value), Request) or f"{name}." not in line:
            continue
        pattern = rf"(?<![\w.]){re.escape(name)}\s*\.\s*(\w+)\b(?!\s*\()"
        found.extend((name, attribute) for attribute in re.findall(pattern, line))
    return found


# NOTE: the frameworks a port comes from, whose HTTP exceptions carry their status in
# status_code (Starlette, FastAPI, Falcon, Bottle) or code (Werkzeug, so Flask's abort()).
_FOREIGN_HTTP_ERRORS = frozenset({"werkzeug", "flask", "starlette", "fastapi", "falcon", "bottle"})


def _foreign_http_error(exc: Exception) -> str:
    """Say what to raise instead of ``exc``, another framework's HTTP exception; else ``""``.

    Raised in a port (``abort(404)`` kept from Flask, Starlette's ``HTTPException``), it is no
    ``HTTPError`` here, so a 500; its log line said nothing of why.
    """
    cls = type(exc)
    # NOTE: str(): a class's __module__ may be anything (None, set by a code generator), and
    # its partition() raised out of this log line, the app's error out to the server.
    if str(cls.__module__).partition(".")[0] not in _FOREIGN_HTTP_ERRORS:
        return ""
    for name in ("status_code", "code"):
        status = getattr(exc, name, None)
        # NOTE: an HTTPStatus member (Starlette's docs pass them) counts, as its plain int.
        if isinstance(status, int) and not isinstance(status, bool) and 400 <= status <= 599:
            return (
                f"{cls.__module__}.{cls.__qualname__} is not microweb's; "
                f"raise microweb.HTTPError({int(status)}) instead"
            )
    return ""


# NOTE: Python's words for a keyword that a function does not take (3.13 may add "Did you
# mean"), naming the function by its __qualname__.
_UNEXPECTED_KEYWORD = re.compile(r"(\w+)\.(\w+)\(\) got an unexpected keyword argument '(\w+)'")

# NOTE: microweb's classes whose calls a port gives another framework's keywords:
# Starlette's and FastAPI's status_code=, content= and background=, Flask's (Werkzeug's)
# response=, mimetype= and content_type=, Falcon's HTTPError title= and description=.
_KEYWORD_CLASSES = frozenset({"Response", "HTTPError", "Templates"})
_KEYWORDS = {
    "status_code": ("status",),
    "content": ("body", "value", "text", "html"),
    "response": ("body",),
    "mimetype": ("media_type",),
    "content_type": ("media_type",),
    "title": ("detail",),
    "description": ("detail",),
}


def _foreign_keyword(exc: Exception) -> str:
    """Say which keyword to pass instead of another framework's, which ``exc`` refused.

    ``Response(..., status_code=201)`` kept from Starlette: Python's message named the
    keyword that was wrong, never the one to write.
    """
    if not isinstance(exc, TypeError) or exc.__traceback__ is None:
        return ""
    found = _UNEXPECTED_KEYWORD.match(str(exc))
    if found is None:
        return ""
    owner, function, keyword = found.groups()
    if owner not in _KEYWORD_CLASSES or not (keyword in _KEYWORDS or keyword == "background"):
        return ""
    cls = _microweb_class(exc.__traceback__, owner)
    called_function = getattr(cls, function, None)
    if cls is None or not callable(called_function):
        return ""
    called = f"microweb's {owner}.{function}()"
    if keyword == "background":
        return (
            f"{called} takes no background=: call request.after_response(fn, *args, "
            "**kwargs) in the handler"
        )
    taken = inspect.signature(called_function).parameters
    ours = [name for name in _KEYWORDS[keyword] if name in taken]
    if ours:
        written = f"{ours[0]}="
    elif keyword in ("mimetype", "content_type") and "headers" in taken:
        written = "headers={'content-type': ...}"
    else:
        return ""
    return f"{called} takes {written}, not {keyword}= (another framework's name)"


def _microweb_class(tb: TracebackType, name: str) -> type | None:
    """Return microweb's class ``name`` where the frame that made the call refused, the last
    of ``tb``, can reach it (a class, an instance, or a module holding one), else ``None``."""
    while tb.tb_next is not None:
        tb = tb.tb_next
    frame = tb.tb_frame
    namespaces = (frame.f_locals, frame.f_globals)
    # NOTE: Python's message names the class by its own name only: the line's spelling says
    # whose it was, `requests.Response(status_code=...)` beside microweb's Response no hint.
    line = linecache.getline(frame.f_code.co_filename, tb.tb_lineno)
    prefixes = re.findall(rf"(?<![\w.])((?:\w+\s*\.\s*)*){re.escape(name)}\b", line)
    if prefixes and all(prefixes):
        resolved = [_resolved(prefix, name, namespaces) for prefix in prefixes]
        found = next((cls for cls in resolved if isinstance(cls, type)), None)
        if found is not None or None not in resolved:
            return found
    # NOTE: the name as the frame binds it first: the app's own class of that name, beside
    # microweb's imported under another, is no microweb's.
    bound = next((space[name] for space in namespaces if name in space), None)
    values = [bound] if isinstance(bound, type) else [v for n in namespaces for v in n.values()]
    for value in values:
        # NOTE: a module's own dict, never getattr(): a global may be a proxy or a lazy
        # module, whose lookup runs code on the error path.
        held = vars(value).get(name) if isinstance(value, ModuleType) else None
        for candidate in (value, type(value), held):
            found = _microweb_named(candidate, name) if isinstance(candidate, type) else None
            if found is not None:
                return found
    return None


def _resolved(
    prefix: str, name: str, namespaces: tuple[dict[str, object], ...]
) -> type | bool | None:
    """Follow ``prefix`` (``"requests."``, ``"self.templates."``) and ``name`` from the
    frame's ``namespaces``: microweb's class it reaches, ``False`` for any other value, or
    ``None`` where it cannot be followed without running code."""
    first, *rest = [part.strip() for part in prefix.split(".") if part.strip()]
    space = next((space for space in namespaces if first in space), None)
    if space is None:
        return None
    value = space[first]
    for part in [*rest, name]:
        # NOTE: getattr_static(): no property or __getattr__ of the app's runs here.
        value = inspect.getattr_static(value, part, _UNREAD)
        if value is _UNREAD:
            return None
    if not isinstance(value, type):
        return None
    return _microweb_named(value, name) or False


_UNREAD = object()


def _microweb_named(candidate: type, name: str) -> type | None:
    """Return microweb's class ``name`` when ``candidate`` is it or a subclass of it."""
    for cls in candidate.__mro__:
        if cls.__name__ == name and str(cls.__module__).partition(".")[0] == "microweb":
            return cls
    return None


def _grouped_http_error(exc: Exception) -> str:
    """Say how to raise the ``HTTPError`` that ``exc``, an exception group of such errors
    only, holds: an ``asyncio.TaskGroup``'s (or anyio's) whose task raised it."""
    # NOTE: no HTTPError, so a 500, as in Starlette, which answers a group by its own class
    # too; answering the first of a group would be a guess of which one the app meant.
    error = only_of(exc, HTTPError)
    if error is None:
        return ""
    return (
        f"{type(exc).__name__} of HTTPError({error.status}), a task group's: only an "
        "HTTPError raised on its own is answered, a group is a 500 (as in Starlette); raise "
        f"it alone, with {_RAISE_ALONE}"
    )


# NOTE: except* is Python 3.11's: on 3.10 the hint said to write a SyntaxError, where the
# exceptiongroup backport (anyio's groups there) takes a group apart with catch().
_RAISE_ALONE = (
    "except* HTTPError as group: raise group.exceptions[0]"
    if sys.version_info >= (3, 11)
    else "exceptiongroup's catch({HTTPError: handler}) around the task group, the handler "
    "raising group.exceptions[0]"
)
