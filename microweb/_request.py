"""The request: ``Request``, its head (parsed lazily) and its body methods in two colours.

The head's properties are in ``_request_head`` and the body's twin methods in ``_request_body``;
``Request`` holds every slot, so that it builds fast, and owns what is neither: ``state``,
``session`` and the after-response callbacks. The drivers decode the path here first, and
each builds its own subclass (``WSGIRequest``, ``ASGIRequest``), which gives the driver hooks
``HeadProperties`` names: how to read the head from the environ or the scope, and the body.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from types import SimpleNamespace
from typing import Any, TypeVar
from urllib.parse import quote, quote_from_bytes

from ._binding import check_binding
from ._effects import AfterCalls, Colored
from ._errors import KeptError, refuse_other_spellings, report_unhandled
from ._limits import Limits
from ._percent import percent_decode_bytes
from ._request_body import BodyMethods
from ._request_head import MISSING
from ._routing import is_async_callable
from ._target import PATH_SAFE
from ._types import AppLike

logger = logging.getLogger("microweb")

_PERCENT = ord("%")
R = TypeVar("R", bound="Request")


def _not_callable(fn: object) -> str:
    # NOTE: told where the handler makes the mistake; found after the response, it was only a
    # log line, and the coroutine's "never awaited" warning.
    if isinstance(fn, Coroutine):
        fn.close()
        name = getattr(fn, "__qualname__", "fn")
        return (
            f"after_response() takes the function and its arguments, not the coroutine a call "
            f"made: request.after_response({name}, ...), not request.after_response({name}(...))"
        )
    return f"after_response() takes a function to call, not {type(fn).__name__}"


def decode_path(raw: bytes) -> str | None:
    """Decode a percent-decoded path strictly as UTF-8; ``None`` when it is not valid UTF-8."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


def decode_raw_path(raw_path: bytes) -> str | None:
    """Percent-decode and UTF-8-decode a raw (still encoded) request path.

    Leading slashes collapse into one, ``%2F`` decoded ones included, as Waitress does.
    """
    if _PERCENT not in raw_path:
        # PERF: an int in bytes is a memchr, 0.02 us; unquote_to_bytes() costs 0.11 us. The
        # decoding is decode_path()'s, inlined.
        try:
            return raw_path.decode("utf-8")
        except UnicodeDecodeError:
            return None
    path = percent_decode_bytes(raw_path)
    return decode_path(path if path[1:2] != b"/" else b"/" + path.lstrip(b"/"))


# NOTE: what other frameworks' requests call what a Request has under another name.
_OTHER_SPELLINGS = {
    "body": "request.read(), or await request.aread() in an async def handler",
    "data": "request.read(), or await request.aread() in an async def handler",
    "get_data": "request.read(), or await request.aread() in an async def handler",
    "get_json": "request.json(), or await request.ajson() in an async def handler",
    "args": "request.query (a multidict of the query string)",
    "query_params": "request.query (a multidict of the query string)",
    "GET": "request.query (a multidict of the query string)",
    "POST": "request.form(), or await request.aform() in an async def handler",
    "files": "request.form().files, or (await request.aform()).files",
    "values": "request.query, and request.form() for the body's fields",
    "stream": "request.iter_bytes(), or request.aiter_bytes() in an async def handler",
    "remote_addr": "request.client (its host and port)",
    "base_url": "request.url and request.root_path",
    "host_url": "request.url and request.root_path",
    "url_root": "request.url and request.root_path",
    "access_route": "request.client, with the ProxyHeaders plugin behind proxies",
    "is_json": "request.json(silent=True), None for a body that is not JSON",
    "mimetype": "request.content_type, the whole Content-Type header (its parameters too)",
    "content_length": 'request.headers.get("content-length")',
    "user_agent": 'request.headers.get("user-agent")',
    "referrer": 'request.headers.get("referer")',
    "authorization": 'request.headers.get("authorization")',
    "accept": 'request.headers.get("accept")',
    "is_secure": 'request.scheme == "https"',
    "scope": "request.headers, request.client, request.root_path... (no scope under WSGI)",
    "receive": "request.aiter_bytes() for the body, await request.ais_disconnected()",
    # NOTE: Falcon's.
    "media": "request.json() or request.form(), or their async twins ajson() and aform()",
    "get_media": "request.json() or request.form(), or their async twins ajson() and aform()",
    "get_param": 'request.query.get("name"), or request.query["name"] for a required one',
    "get_param_as_int": 'request.query.get("name", type=int) (None for a value not an int)',
    "get_param_as_float": 'request.query.get("name", type=float) (None for one not a float)',
    "get_param_as_bool": 'request.query.get("name") == "true"',
    "get_param_as_list": 'request.query.getlist("name")',
    "get_header": 'request.headers.get("name")',
    "params": "request.query (a multidict of the query string)",
    "context": "request.state",
    "bounded_stream": "request.iter_bytes(), or request.aiter_bytes() in an async def handler",
    "uri": "request.url",
    "relative_uri": "request.full_path, with request.root_path in front",
}


class Request(BodyMethods):
    """An HTTP request, the same object under WSGI and ASGI.

    The head is parsed lazily; the body is read with twin methods: ``read``/``aread``,
    ``text``/``atext``, ``json``/``ajson``, ``iter_bytes``/``aiter_bytes``. Both colours share one
    cache. Calling a sync body method where an event loop is running raises ``RuntimeError``
    naming the async twin.

    Each driver builds its own subclass with ``new_request()``, which only reads the head from
    its environ or scope and makes the body source (the driver hooks of ``HeadProperties``);
    everything else is written here once.
    """

    # NOTE: every slot is here, those its mixins fill too (their own __slots__ are empty, as
    # are the drivers' subclasses').
    __slots__ = (
        "_after",
        "_body",
        "_body_error",
        "_channel",
        "_cleanups",
        "_client",
        "_consumed",
        "_cookies",
        "_error_page",
        "_failed_handler",
        "_form",
        "_headers",
        "_host",
        "_inline",
        "_json",
        "_json_depth",
        "_meter",
        "_query",
        "_raw",
        "_raw_path",
        "_read_done",
        "_reading",
        "_source",
        "_state",
        "app",
        "limits",
        "method",
        "path",
        "path_is_valid",
        "path_params",
        "query_string",
        "route",
        "scheme",
    )

    # NOTE: the slots the mixins do not declare; new_request() fills every one.
    method: str
    path_is_valid: bool
    path_params: dict[str, Any]
    route: Any
    _raw: Any
    _channel: Any
    _state: SimpleNamespace | None
    _after: AfterCalls | None
    # NOTE: the slots new_request() leaves unset: error_response() sets them, off the hot path.
    _error_page: bool
    _failed_handler: BaseException | None

    @property
    def state(self) -> SimpleNamespace:
        """A free namespace for this request, for flows and plugins to share values."""
        if self._state is None:
            self._state = SimpleNamespace()
        return self._state

    @property
    def session(self) -> dict[str, Any]:
        """The session dict, set by the ``Sessions`` plugin as ``request.state.session``.

        Where the plugin is installed but its flow never ran for this request (an error page
        for a request a flow outside it refused, such as ``TrustedHosts``; or a WebSocket route
        that skips it), an empty session that can't be changed.

        Raises:
            RuntimeError: If no sessions plugin is installed, or its flow has not run yet: this
                code runs in a flow outside it, on the request's way in.
        """
        session = getattr(self.state, "session", None)
        if session is None:
            if not self._session_plugins():
                raise RuntimeError(
                    "request.session needs a sessions plugin: "
                    "app.install(Sessions(secret=...)) from microweb.plugins"
                )
            if not self._answered_outside_sessions():
                # NOTE: an empty session here read as a user logged out: a login check in a
                # flow registered before app.install(Sessions(...)) sent everyone to log in.
                raise RuntimeError(
                    "request.session is read before the sessions plugin's flow loaded it: "
                    "this code runs in a flow outside it (a flow registered before "
                    "app.install(Sessions(...)) runs first); register the flow after it"
                )
            # NOTE: an error page whose base template reads the session ("logged in as")
            # turned TrustedHosts' 400 into a 500.
            return UnloadedSession()
        return session  # type: ignore[no-any-return]

    def _answered_outside_sessions(self) -> bool:
        """Whether an error page or a WebSocket route answers this request, which the sessions
        plugin's flow did not load: its session can't be loaded any more."""
        # NOTE: the slot is set by error_response() only, so that the hot path sets nothing.
        if getattr(self, "_error_page", False):
            return True
        route = self.route
        if route is None or route.kind != "websocket" or not route.skip:
            return False
        return any(
            getattr(plugin, "name", None) in route.skip for plugin in self._session_plugins()
        )

    def _session_plugins(self) -> list[object]:
        # NOTE: by a mark, not by the name "sessions": a subclass installed under another name
        # is one, and a plugin of that name that sets no session is not.
        return [plugin for plugin in self.app.plugins if getattr(plugin, "sets_session", False)]

    def after_response(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> None:
        """Run ``fn(*args, **kwargs)`` once the response's last byte is handed to the server.

        Callbacks run in the order they were added, after a streamed body too, and also when
        the client left mid-way: they are cleanup. ``fn`` may be ``def`` (under ASGI it runs in
        the thread pool, so it may block) or ``async def`` (awaited in an asyncio task of its
        own, under WSGI on the app loop). A callback that raises is logged on the
        ``"microweb"`` logger; the response, sent already, is not changed, and the next
        callbacks still run. A callback gets the body the handler read; one the handler left
        unread raises ``ClientDisconnect``.

        Args:
            fn: The callable, sync or async.
            *args: Positional arguments for ``fn``.
            **kwargs: Keyword arguments for ``fn``.

        Raises:
            TypeError: If ``fn`` is not callable, such as the coroutine of ``notify(order)``
                where ``notify, order`` was meant, or if the arguments do not fit its
                parameters (checked now, as ``inspect.Signature.bind`` would; a callable
                whose signature cannot be read is let be).
            RuntimeError: If the request has ended (a request kept past its end, by a
                background job say): ``fn`` would never run.
        """
        if not callable(fn):
            raise TypeError(_not_callable(fn))
        # NOTE: arguments that did not fit failed only after the response, as a log line.
        check_binding(fn, args, kwargs, "request.after_response()")
        call = (Colored(fn, is_async_callable(fn)), args, kwargs)
        after = self._after
        if after is None:
            self._after = AfterCalls([call])
        elif after.ran:
            # NOTE: appended to a list nobody read again, it never ran, and nothing said so.
            raise RuntimeError(
                f"request.after_response() called on {logged_request(self)} after "
                "the request ended: the callback would never run; call it while the request "
                "is handled"
            )
        else:
            after.append(call)

    def close(self) -> None:
        """Release what the request holds (temporary files of uploads); drivers call it.

        Each is released, whatever another raises: a failure is logged, not raised.
        """
        # NOTE: it does not mark the request ended: a handler may call it, and the flows, error
        # handlers and stream after it may still add callbacks (refused, they were a 500). The
        # drivers mark it (ENDED) as they end it.
        cleanups = self._cleanups
        try:
            while cleanups:
                cleanup = cleanups.pop()
                try:
                    cleanup.discard()
                except Exception as exc:
                    # NOTE: raised, it left the cleanups after it (an upload's file on disk)
                    # and went to the server after a whole answer: a 500 or a cut connection.
                    logger.error(
                        "error while releasing the files of %s", logged_request(self), exc_info=exc
                    )
                    report_unhandled(exc)
        finally:
            if cleanups:
                # NOTE: app code's KeyboardInterrupt or SystemExit (an upload's file swapped
                # for its own) goes on to the server once the others are released too.
                self.close()
        if isinstance(self._form, KeptError):
            # NOTE: the error a form raised is kept for form()'s next call; its traceback holds
            # frames that hold this request, a cycle only the garbage collector would free.
            self._form = None
        # NOTE: the same cycle, for a read's error (and the meter that keeps a stream's).
        self._body_error = self._meter = None

    def _files_on_disk(self) -> bool:
        """Whether ``close()`` closes a file on disk (disk work), not only files in memory."""
        return any(builder.on_disk for builder in self._cleanups or ())

    def __repr__(self) -> str:
        # NOTE: the method as it came (Waitress passes on any, up to a space) put CR LF into
        # whatever logged the repr: encoded as the access log encodes it.
        return f"<Request {logged_method(self)} {self.path!r} via {self.interface}>"


def new_request(
    cls: type[R],
    app: AppLike,
    limits: Limits,
    method: str,
    path: str | None,
    query_string: bytes,
    scheme: str,
    raw: Any,
    channel: Any,
    raw_path: bytes | None,
) -> R:
    """Build a request of the driver's class ``cls`` (``WSGIRequest`` or ``ASGIRequest``).

    Args:
        cls: The driver's subclass of ``Request``.
        app: The app (``request.app``).
        limits: The app's limits, until routing sets the route's.
        method: The request method.
        path: The decoded path; ``None`` when the target is not a path or not UTF-8.
        query_string: The raw query string.
        scheme: ``"http"`` or ``"https"``.
        raw: The driver's own: its environ or scope.
        channel: The driver's own: (ASGI) how to receive the body.
        raw_path: The raw path, if the driver has it at hand already.
    """
    # PERF: positional, and the rest of the head read from ``raw`` on first use: 0.4 us
    # to build a request instead of 2.2 (15 keywords, 3 closures, 30 attributes). And no
    # head object beside it, but the driver's subclass: instructions a request, ASGI hello
    # 33,200 -> 29,700, last of 1,000 routes 43,800 -> 41,200; WSGI 22,400 -> 20,700 and
    # 33,500 -> 31,500 (valgrind, PYTHONHASHSEED=0, 2026-11-30). A function rather than
    # __init__, which CPython 3.11 enters from C with a new frame: 350 instructions less a
    # WSGI hello, 650 an ASGI one (same measure).
    # PERF: cls() rather than object.__new__(cls), whose wrapper checks the class and makes
    # two argument tuples: no class in Request's MRO has an __init__ or __new__ of its own
    # (tests/test_request.py checks), so the call is all C and sets nothing more. A WSGI hello
    # 18,578 -> 18,268 instructions a request, an ASGI one 27,511 -> 27,204 (bench/icount.sh,
    # PYTHONHASHSEED=0, 2026-12-07).
    request = cls()
    request.app, request.limits, request.method = app, limits, method
    # NOTE: a path that is not valid UTF-8 is kept as None; routing answers it with 400.
    request.path = path if path is not None else ""
    request.path_is_valid = path is not None
    request.query_string, request.scheme = query_string, scheme
    request._raw, request._channel = raw, channel
    # PERF: the body source is made on first use, like the head: 0.3 us less for a request
    # that never reads its body under ASGI.
    request._source = None
    request.path_params = {}
    request.route = None
    request._raw_path = raw_path
    request._client = MISSING
    request._headers = None
    request._host = None
    request._query = None
    request._cookies = None
    request._state = None
    request._body = None
    request._body_error = None
    request._meter = None
    request._json = MISSING
    request._form = None
    request._consumed = ""
    request._reading = ""
    request._read_done = None
    request._inline = 0
    # NOTE: the form builders, whose files are closed when the request ends.
    request._cleanups = None
    # NOTE: None until after_response() is called: the drivers check it once per request.
    request._after = None
    return request


class UnloadedSession(dict[str, Any]):
    """The session of a request that the sessions plugin's flow never saw: empty, and a
    change raises, since it could not be saved."""

    def _refuse(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(
            "this request's session was not loaded, so it can't be changed: a flow outside "
            "the sessions plugin answered it (such as TrustedHosts' refusal), or this "
            "WebSocket route skips the plugin"
        )

    __setitem__ = __delitem__ = update = setdefault = _refuse
    pop = popitem = clear = __ior__ = _refuse


def logged_request(request: Request) -> str:
    """Return the request's method and path as a log line names it: ``GET /orders``."""
    return f"{logged_method(request)} {logged_path(request)}"


# SPEC: RFC 9110 5.6.2, the tchar that quote() would encode, but "%": written "%25", it keeps
# an encoded method apart from one sent with a "%" in it.
_METHOD_SAFE = "!#$&'*+^`|"


def logged_method(request: Request) -> str:
    """Return the request's method as a log line may hold it: percent-encoded unless a token.

    A server that passes on any method (Waitress: all up to a space), a raw environ or scope,
    let CR LF in it start a forged line in the log, as in a path (see ``logged_path``).
    """
    return logged_method_name(request.method)


def logged_method_name(method: str) -> str:
    """Return ``method`` as ``logged_method()`` spells a request's."""
    # NOTE: a method of letters alone (all but a few) as it is, with no quote().
    if len(method) <= LOGGED_METHOD and method.isalpha() and method.isascii():
        return method
    # NOTE: a lone surrogate (a raw environ's) raised out of the log call, and of the app:
    # written as repr() writes it, then encoded.
    kept = quote(method[:LOGGED_METHOD], safe=_METHOD_SAFE, errors="backslashreplace")
    return kept + _cut(len(method), LOGGED_METHOD)


# NOTE: the characters of a method that a log line holds (the longest registered one has
# 17), then "[...+N]" as for a path. A method is any token under h11 and Waitress (anything
# in a raw environ or scope): one as long as the head (256 KiB) was logged whole (review337).
LOGGED_METHOD = 64


def logged_path(request: Request, *, whole: bool = False) -> str:
    """Return the request's path as a log line may hold it: percent-encoded again.

    ``request.path`` is decoded: ``/a%0D%0AINFO:%20forged`` holds CR LF, which started a
    forged line in the log. Encoded as Uvicorn's access log encodes it, the path is one field
    without spaces or control characters; a path that is not UTF-8 is its bytes so encoded.
    ``whole`` puts the root path (the app's mount) before it: the path the client asked for.
    """
    # NOTE: the root path is cut with the path: a prefix that takes a client's text (a mount
    # at "/{tenant}" in another framework) was written whole (review337).
    root = request.root_path if whole else ""
    # NOTE: escaped control characters kept a request on one line, but a space ("/a%20200")
    # let it add fields, and a reader splitting the line on spaces took "200" for the status.
    if request.path_is_valid:
        path = root + request.path
        return quote(path[:LOGGED_PATH], safe=PATH_SAFE) + _cut(len(path))
    # NOTE: not UTF-8, or not a path ("*" for a GET): request.path is "", and the line lost a
    # field ("GET  400"). Its bytes then, in the same spelling.
    return logged_bytes(root.encode() + percent_decode_bytes(request.raw_path))


# NOTE: the characters (or bytes) of a path that a log line holds; past them, "[...+N]" says
# how many more there were ("[" is always encoded in a path, so it ends no path's text).
# PERF: the whole path was encoded, at 26 ns a character that needs it (7 ms for the 256 KiB
# head that every server takes), and written whole: each request of a client's wrote up to
# 768 KB into the log (hostile4, 2026-12-07). nginx's longest request line is 8 KiB.
LOGGED_PATH = 4096


def _cut(length: int, kept: int = LOGGED_PATH) -> str:
    return f"[...+{length - kept}]" if length > kept else ""


def logged_bytes(path: bytes) -> str:
    """Return a decoded path's bytes as ``logged_path()`` spells a path: percent-encoded, its
    first ``LOGGED_PATH`` bytes, then how many more there were."""
    return quote_from_bytes(path[:LOGGED_PATH], safe=PATH_SAFE) + _cut(len(path))


# NOTE: "'ASGIRequest' object has no attribute 'body'" named a class the app never wrote, nor
# what to write.
refuse_other_spellings(Request, _OTHER_SPELLINGS)
