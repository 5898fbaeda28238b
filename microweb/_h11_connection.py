"""h11's server side as ``microweb serve``'s h11 protocol (``_h11.py``) runs it.

``FramedConnection`` reads a request through the readers of ``_h11_framing.py``, refuses the
requests h11 reads but Waitress and httptools refuse (400, or 431 for a head too long), and
hands Uvicorn the target as they read it: with no fragment, in origin-form, and a path with
escapes replaced by a stand-in, whose own path the protocol decodes in C
(``decoded_path()``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import h11
from h11._readers import ChunkedReader, maybe_read_from_IDLE_client

from ._framing import has_body, switch_refusal
from ._h11_framing import CONTROL_BYTE, StrictChunkedReader, read_head
from ._percent import percent_decode
from ._target import authority_refusal


class FramedConnection(h11.Connection):
    """h11's server side, reading through the readers of ``_h11_framing.py`` (which refuse a
    head with both ``Transfer-Encoding`` and ``Content-Length``, or with a folded line), and
    refusing in ``next_event()`` the requests that h11 reads and Waitress
    and httptools refuse."""

    # NOTE: whether a request head was refused for being too long (431), or for a transfer
    # coding h11 does not read before chunked (501).
    too_large = not_implemented = False
    # NOTE: the reason a CONNECT or Upgrade request with a body was refused (switch_refusal()).
    switch_refused: str | None = None
    # NOTE: the target of the last request given with a stand-in (escaped_stand_in()), until
    # its scope has its path.
    escaped_target: bytes | None = None
    # NOTE: the target of the last request, when it is no path (authority-form, "*"), until
    # its scope has it without the root path.
    bare_target: bytes | None = None

    def _get_io_object(self, role: Any, event: Any, io_dict: Any) -> Any:
        # NOTE: h11 picks the reader for the state the client is in; the head's is wrapped.
        reader = super()._get_io_object(role, event, io_dict)
        if isinstance(reader, ChunkedReader):
            return StrictChunkedReader()
        return read_head if reader is maybe_read_from_IDLE_client else reader

    def next_event(self) -> Any:
        """Return h11's next event; a request h11 reads but microweb serve refuses is a
        protocol error (400).

        A request framed two ways (``Transfer-Encoding`` and ``Content-Length``) never gets
        here: its head is refused as it is read (``check_codings()``).
        """
        state = self.their_state
        try:
            event = super().next_event()
        except h11.RemoteProtocolError as exc:
            # NOTE: h11's 431 is for any event too long: in a body (chunk line or trailer)
            # it stays the 400 Uvicorn sends, as under httptools.
            self.too_large = exc.error_status_hint == 431 and state is h11.IDLE
            self.not_implemented = exc.error_status_hint == 501
            raise
        if isinstance(event, h11.Request):
            if event.method != event.method.upper():
                # SPEC: RFC 9110 9.1, a method is case-sensitive: "connect" is no CONNECT.
                # NOTE: h11 passed one on (and read a "connect" request's body as a body),
                # where Waitress refuses a method not in upper case and httptools knows none.
                raise h11.RemoteProtocolError("method not in upper case", 400)
            if event.http_version not in (b"1.0", b"1.1"):
                # SPEC: RFC 9112 2.3. NOTE: h11 served any HTTP/x.y as HTTP/1.1, where
                # Waitress and httptools answer 400 (microweb serve's).
                raise h11.RemoteProtocolError("HTTP version not served", 400)
            if head_size(event) >= self._max_incomplete_event_size:
                # NOTE: h11 measures only a head that is still incomplete after a read, and a
                # read is 256 KiB at most: a head of up to twice that was served if it ended
                # in the second read. Waitress refuses a head of its limit or more.
                self.too_large = True
                raise h11.RemoteProtocolError("request head too large", 431)
            # PERF: an origin-form target ("/...") has no authority: no call (0.17 us).
            authority = None if event.target[:1] == b"/" else authority_refusal(event.target)
            if authority is not None:
                # NOTE: h11 served "http://[/url" as /url, where httptools answers 400.
                raise h11.RemoteProtocolError(authority, 400)
            if b"#" in event.target:
                # SPEC: RFC 9112 3.2, a request target holds no fragment. NOTE: h11 kept it in
                # the path ("/x#f", and request.url "/x%23f", a 404), where Waitress and
                # httptools leave it out.
                event = without_fragment(event)
            if ABSOLUTE_FORM.match(event.target):
                # SPEC: RFC 9112 3.2.2, a server MUST accept the absolute-form. NOTE: Uvicorn
                # took the whole target for the path ("http://h/a", a 404), where httptools
                # and Waitress take the path from it.
                event = in_origin_form(event)
            self.bare_target = event.target if event.target[:1] != b"/" else None
            if any(CONTROL_BYTE.search(value) for _, value in event.headers):
                # SPEC: RFC 9110 5.5, a field value holds no control character but HTAB.
                # NOTE: h11 let them through, where Waitress and httptools answer 400: echoed
                # into a response header, such a value was a 500 under h11 only.
                raise h11.RemoteProtocolError("control character in a header value", 400)
            switching = switch_refusal(
                event.method.decode("latin-1"),
                joined_field(event.headers, b"connection"),
                any(value for name, value in event.headers if name == b"upgrade"),
                has_body(event.headers),
            )
            if switching is not None:
                self.switch_refused = switching
                raise h11.RemoteProtocolError(switching, 400)
            stand_in = escaped_stand_in(event)
            if stand_in is not None:
                self.escaped_target, event = event.target, stand_in
        return event


# NOTE: a target in absolute-form: a scheme, then "://" (RFC 3986 3.1).
ABSOLUTE_FORM = re.compile(rb"[A-Za-z][A-Za-z0-9+.-]*://")


def in_origin_form(request: h11.Request) -> h11.Request:
    """Return ``request`` (its target in absolute-form) with the path and the query of its
    target only: the path starts after the authority, at its first ``/`` or ``?``; ``/`` for
    none (RFC 9110 4.2.3)."""
    after = request.target.partition(b"://")[2]
    ends = [end for end in (after.find(b"/"), after.find(b"?")) if end >= 0]
    rest = after[min(ends) :] if ends else b""
    return h11.Request(
        method=request.method,
        target=rest if rest[:1] == b"/" else b"/" + rest,
        headers=request.headers,
        http_version=request.http_version,
    )


def escaped_stand_in(request: h11.Request) -> h11.Request | None:
    """Return ``request`` with the path of its target (ASCII, with escapes) as ``/``, its
    query kept; ``None`` for a target with no escape in its path, or not ASCII."""
    path, question, query = request.target.partition(b"?")
    # NOTE: a path that is not ASCII stays: Uvicorn's decode("ascii") refuses it as it did.
    if b"%" not in path or not path.isascii():
        return None
    return h11.Request(
        method=request.method,
        target=b"/" + question + query,
        headers=request.headers,
        http_version=request.http_version,
    )


def decoded_path(path: bytes) -> str:
    """Return ``path`` as Uvicorn gives it in the scope: ``unquote(path.decode("ascii"))``,
    its escapes decoded in C.

    Raises:
        UnicodeDecodeError: For a path that is not ASCII, as Uvicorn's does.
    """
    return percent_decode(path.decode("ascii"))


def joined_field(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> str | None:
    """Return the lines of the field ``name`` (lower case) of an h11 request joined with
    ``", "``, or ``None``."""
    values = [value.decode("latin-1") for found, value in headers if found == name]
    return ", ".join(values) if values else None


def without_fragment(request: h11.Request) -> h11.Request:
    """Return ``request`` with its target cut at the first ``#``.

    Raises:
        h11.RemoteProtocolError: For a target that is all fragment (400).
    """
    target = request.target.partition(b"#")[0]
    if not target:
        raise h11.RemoteProtocolError("request target without a path", 400)
    return h11.Request(
        method=request.method,
        target=target,
        headers=request.headers,
        http_version=request.http_version,
    )


def head_size(request: h11.Request) -> int:
    """Return the size of ``request``'s head as Waitress measures it: request line, header
    lines as ``name: value`` with their CRLF, and the blank line."""
    # NOTE: "GET / HTTP/1.1\r\n": two spaces, "HTTP/", CRLF.
    line = len(request.method) + len(request.target) + len(request.http_version) + 9
    fields = sum(len(name) + len(value) + 4 for name, value in request.headers)
    return line + fields + 2
