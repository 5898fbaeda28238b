"""The socket-level checks both servers of ``microweb serve`` make, written once.

Neither server is imported here: Waitress mode may not import Uvicorn (``_stall`` does), and
Uvicorn mode need not import Waitress.
"""

from __future__ import annotations

import socket
from typing import Any


def reset_after_end(sock: Any) -> bool:
    """Whether the socket ``sock`` (its peer's sending ended) has been reset since: a
    ``socket.socket`` (Waitress's channel's) or asyncio's ``TransportSocket`` (Uvicorn's).

    NOTE: on the wire a close and a half-close are one FIN (the socket waits in CLOSE_WAIT
    either way): only a reset after it (a client that aborts, or closes with answers unread)
    tells them apart, as a pending error. Reading it clears it; a write fails all the same. A
    socket that can no longer be asked (closed meanwhile) counts as reset.
    """
    try:
        return bool(sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR))
    except OSError:
        return True
