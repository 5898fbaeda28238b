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
