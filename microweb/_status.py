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
        ValueError: If it is not 100 to 599, which no server can send as a status line.
    """
    if isinstance(status, bool) or not isinstance(status, int):
        raise TypeError(f"{what} whose status is {type(status).__name__}; a status is an int")
    if not 100 <= status <= 599:
        raise ValueError(f"{what} with the status {status}; a status is 100 to 599")
    return int(status)
