"""How a ``TestClient``'s sides are closed: by ``close()``, or once the client is dropped
unclosed and collected, from a thread where closing can't deadlock, and never from the cycle
collector in the middle of another test's code where shutdown hooks would run."""

from __future__ import annotations

import contextlib
import gc
import threading
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import httpx

from ._asgi_lifespan import release_pool
from ._effects import ShutdownError

if TYPE_CHECKING:
    from ._asgi import ASGIDriver
    from ._testing_asgi import Lifespan, LoopThread
    from ._testing_websocket import WebSocketSession
    from ._wsgi import WSGIDriver


# NOTE: the thread in which the cycle collector runs, while it runs: a client it frees is
# freed at no fixed point, in the middle of any test's code. Its thread only: finalizers let
# other threads run meanwhile, where a client dropped by its last reference is not one of these.
_COLLECTING: list[int | None] = [None]


def _watch_collections(phase: str, info: dict[str, int]) -> None:
    _COLLECTING[0] = threading.get_ident() if phase == "start" else None


gc.callbacks.append(_watch_collections)


def on_drop(
    client: object, close: Callable[..., None], *parts: Any, hooks: bool = False
) -> weakref.finalize[Any, Any]:
    """Return what runs ``close(*parts)`` once: when called, or when ``client`` is collected.

    At interpreter exit it is left to the drivers (the WSGI one runs its shutdown hooks then),
    and so is a close that runs shutdown ``hooks`` when the cycle collector frees the client.
    """
    release = weakref.finalize(client, _from_a_safe_thread, close, hooks, *parts)
    release.atexit = False
    return release


def close_now(release: weakref.finalize[Any, Any] | None) -> None:
    """Run a side's close now, in this thread (``close()``), unless it has run."""
    found = release.detach() if release is not None else None
    if found is not None:
        _, _, (close, _, *parts), _ = found
        close(*parts)


def _from_a_safe_thread(close: Callable[..., None], hooks: bool, *parts: Any) -> None:
    if hooks and _COLLECTING[0] == threading.get_ident():
        # NOTE: a client in a reference cycle (a test's traceback holds its frame): its
        # shutdown hooks, run by a later collection, closed what another test's client of the
        # same app had just opened. The WSGI driver runs them at exit, as before.
        return
    # NOTE: a client dropped unclosed, collected in a thread other than the main one (maybe
    # its own event loop, or a pool thread, which the close would wait on): such a close runs
    # in a thread of its own.
    if threading.current_thread() is threading.main_thread():
        _close_dropped(close, *parts)
    else:
        args = (close, *parts)
        threading.Thread(target=_close_dropped, args=args, name="microweb-testclient-close").start()


def _close_dropped(close: Callable[..., None], *parts: Any) -> None:
    # NOTE: each failed shutdown step is logged already; raised where Python collected the
    # client, the error would be an "Exception ignored" that pytest pins on whichever test runs
    # then (as the WSGI driver's own close at exit, it is not raised).
    with contextlib.suppress(ShutdownError):
        close(*parts)


def close_wsgi_side(client: httpx.Client, wsgi: WSGIDriver) -> None:
    """Close the WSGI side: its httpx client, then the driver (shutdown hooks, app loop)."""
    client.close()
    wsgi.close()


def close_asgi_side(loop: LoopThread, client: httpx.AsyncClient, asgi: ASGIDriver) -> None:
    """Close the ASGI side: its httpx client, its event loop and the pool of ``def`` handlers
    (a lifespan shutdown, which releases the pool too, is run before this)."""
    try:
        loop.run(client.aclose())
    finally:
        loop.stop()
        release_pool(asgi)
        if asgi.started:
            # NOTE: started by a request, with no lifespan: its shutdown never runs, as a
            # server's without lifespan messages, but it serves no more. Still counted as
            # serving, it made the app refuse every startup step for good (review155).
            asgi.started = False
            asgi.plan.startup_steps.stopped()


def stop_asgi_side(
    loop: LoopThread,
    lifespan: Lifespan | None,
    sessions: list[WebSocketSession],
    release: weakref.finalize[Any, Any],
) -> None:
    """Stop the ASGI side as a server stops: close its open ``sessions``, run the shutdown
    hooks (where ``lifespan`` ran startup), then ``release`` it."""
    try:
        # NOTE: as a server stops: its open WebSockets are closed (1012) and their handlers
        # end, then the shutdown hooks run; the hooks ran first, and the handlers were
        # cut off, so a finally that used what a hook closed failed in tests alone.
        for session in sessions:
            session._server_stopped()
        if lifespan is not None:
            loop.run(lifespan.shutdown())
    finally:
        close_now(release)
