"""The default answers: the error body, JSON or plain text by the client's ``Accept``
(``default_error``), the 500 of last resort, and what the drivers answer past the handlers: a
client that went away while its body was read (``client_left``), an error handler that failed
where none may answer it (``handlers_failed``), a response that can't be sent (``to_send``,
``unsendable``).
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Mapping
from typing import TYPE_CHECKING

from ._emission import ACCEPT_VARIES, NOSNIFF, Header, outgoing
from ._errors import ClientDisconnect, HTTPError, report_unhandled, status_phrase
from ._media import JSON, TEXT, encode_json
from ._parsing import header_value, prefers_json
from ._port_hints import port_hint
from ._request import logged_method, logged_path
from ._response import Response, StreamBody

if TYPE_CHECKING:
    from ._plan import Plan
    from ._request import Request

logger = logging.getLogger("microweb")


def handlers_failed(plan: Plan, request: Request, exc: Exception) -> Response:
    """Answer ``exc``, which an error handler raised where no error handler may answer it.

    A sync error handler's own ``CancelledError`` reaches the driver past the handlers (the
    core takes it for a cut), which answer it then; raised there again, it is logged as any
    error handler's failure and the default 500 goes out.
    """
    logger.error(
        "error handler failed for %s %s", logged_method(request), logged_path(request), exc_info=exc
    )
    return last_resort(plan, request, exc)


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
    answer = last_resort(plan, request, exc)
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


def last_resort(plan: Plan, request: Request, exc: Exception) -> Response:
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
