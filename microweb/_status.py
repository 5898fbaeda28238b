"""Status lines, computed once."""

from __future__ import annotations

from http import HTTPStatus

from ._errors import status_phrase

STATUS_LINES = {int(s): f"{int(s)} {s.phrase}" for s in HTTPStatus}


def status_line(status: int) -> str:
    """Return the WSGI status line for ``status``."""
    line = STATUS_LINES.get(status)
    return line if line is not None else f"{status} {status_phrase(status)}"
