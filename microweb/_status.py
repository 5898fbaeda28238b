"""Status lines, computed once."""

from __future__ import annotations

from http import HTTPStatus

STATUS_LINES = {int(s): f"{int(s)} {s.phrase}" for s in HTTPStatus}


def status_line(status: int) -> str:
    """Return the WSGI status line for ``status``.

    SPEC: RFC 9112 4: the reason phrase may be empty. A code without one gets none, as Uvicorn
    sends it (``"299 "``), so the status line is the same under both interfaces.
    """
    line = STATUS_LINES.get(status)
    return line if line is not None else f"{status} "


def checked_status(status: object, what: str) -> int:
    """Return ``status`` as a plain ``int`` (an ``HTTPStatus`` member is one).

    Raises:
        TypeError: If ``status`` is no ``int`` (a ``bool`` is none either).
        ValueError: If it is not 200 to 599: no server can send another number as a status
            line, and a 1xx is an interim answer, which comes before the response and which
            the server sends itself (``100 Continue``, ``101`` for a WebSocket).
    """
    if isinstance(status, bool) or not isinstance(status, int):
        raise TypeError(f"{what} whose status is {type(status).__name__}; a status is an int")
    if not 200 <= status <= 599:
        # NOTE: a 1xx as the response broke the connection under both servers, differently:
        # Waitress sent it and closed; Uvicorn sent it with an empty chunked body, and the
        # client, which reads a 1xx as interim, waited for the response that never came.
        raise ValueError(
            f"{what} with the status {status}; a status is 200 to 599 (a 1xx is an interim "
            "answer, which the server sends itself)"
        )
    return int(status)
