"""The app as ``microweb serve`` hands it to a server: proxies trusted, mounted at its root
path, the servers' size caps above its limits, the timer for clients that stall; and the
environment variables that carry its options to worker processes and the reloader.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._app import App
from ._importer import TargetError
from ._limits import Limits
from ._routing import Route
from .plugins import ProxyHeaders

if TYPE_CHECKING:
    from ._asgi import ASGIDriver

TARGET_VARIABLE = "MICROWEB_TARGET"
FORWARDED_VARIABLE = "MICROWEB_FORWARDED_ALLOW_IPS"
THREADS_VARIABLE = "MICROWEB_THREADS"
ROOT_PATH_VARIABLE = "MICROWEB_ROOT_PATH"
LOG_LEVEL_VARIABLE = "MICROWEB_LOG_LEVEL"
CLIENT_TIMEOUT_VARIABLE = "MICROWEB_CLIENT_TIMEOUT"
# NOTE: Waitress's default channel_timeout, which microweb's Uvicorn protocols follow
# (_stall.STALL_TIMEOUT, which this module may not import: it needs Uvicorn).
CLIENT_TIMEOUT = 120


def time_clients(seconds: int) -> None:
    """Close a Uvicorn connection whose client sends nothing it owes, or reads nothing of its
    answer, for ``seconds`` (``microweb serve``'s protocols, ``_stall.py``)."""
    from ._stall import StallTimer

    StallTimer.stall_timeout = float(seconds)


def trust_proxies(app: App, forwarded_allow_ips: str | None) -> None:
    """Install ``ProxyHeaders`` trusting the comma-separated addresses and ranges, if any.

    Raises:
        TargetError: If an entry is not an address or a range, or the app has the plugin.
    """
    if forwarded_allow_ips is None:
        return
    trusted = [entry.strip() for entry in forwarded_allow_ips.split(",") if entry.strip()]
    try:
        app.install(ProxyHeaders(trusted))
    except ValueError as exc:
        raise TargetError(f"--forwarded-allow-ips: {exc}") from None


def asgi_app(app: App, threads: int | None, root_path: str) -> Any:
    """Return ``app``'s ASGI callable, with ``threads`` in its pool, mounted at ``root_path``."""
    return served_asgi(asgi_driver(app, threads), root_path)


def asgi_driver(app: App, threads: int | None) -> ASGIDriver:
    """Return ``app``'s ASGI driver, with ``threads`` in its pool (the app's own if ``None``)."""
    if threads is not None:
        app.max_threads = threads
    return app.as_asgi()


def served_asgi(asgi: ASGIDriver, root_path: str) -> Any:
    """Return ``asgi`` mounted at ``root_path``, itself if there is none."""
    return _mounted(asgi, root_path) if root_path else asgi


def _mounted(asgi: Any, root_path: str) -> Any:
    # NOTE: Uvicorn's own --root-path prepends the root to every path, so a request that still
    # has it ("/app/items") would become "/app/app/items"; Waitress's url_prefix strips it when
    # present. Setting root_path and leaving path alone lets the driver strip the root when it
    # is there, exactly as under Waitress.
    async def mounted(scope: dict[str, Any], receive: Any, send: Any) -> None:
        scope["root_path"] = root_path
        await asgi(scope, receive, send)

    return mounted


def _all_limits(app: App, routes: list[Route]) -> list[Limits]:
    found = [route.limits for route in routes if isinstance(route.limits, Limits)]
    return found or [app.limits]


def waitress_body_cap(app: App) -> int:
    """Return Waitress's ``max_request_body_size`` for ``app``: its largest body limit, plus room.

    Waitress refuses a body at its cap and counts chunked framing; the room keeps the app's own
    413 (with its error body) for every body it would refuse, and Waitress's for far larger ones.
    """
    return _with_room(max(limits.max_body_size for limits in _all_limits(app, app.routes)))


def websocket_message_cap(app: App) -> int:
    """Return Uvicorn's ``ws_max_size`` for ``app``: its largest WebSocket message, plus room.

    websockets bounds each frame as it comes, compressed (random bytes deflate to a few bytes
    more), and after the message's last inflated byte its next fragments still count: the room
    lets through every message the app accepts, and the app's own limit closes with 1009 one
    that is over it once inflated.
    """
    routes = app.websocket_routes
    return _with_room(max(limits.max_websocket_message for limits in _all_limits(app, routes)))


def _with_room(largest: int) -> int:
    """``largest`` plus an eighth, 64 KiB at least: the server's cap, above the app's limit."""
    return largest + max(64 * 1024, largest // 8)
