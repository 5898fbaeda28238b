"""Type aliases for the two interfaces (PEP 3333 and ASGI 3), and what the core knows of an app."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from types import SimpleNamespace
from typing import Any, Protocol, TypeAlias

Environ: TypeAlias = dict[str, Any]
StartResponse: TypeAlias = Callable[..., Callable[[bytes], object]]
WSGIApp: TypeAlias = Callable[[Environ, StartResponse], Iterable[bytes]]

Scope: TypeAlias = MutableMapping[str, Any]
Message: TypeAlias = MutableMapping[str, Any]
Receive: TypeAlias = Callable[[], Awaitable[Message]]
Send: TypeAlias = Callable[[Message], Awaitable[None]]


class AppLike(Protocol):
    """What ``request.app`` is to the core: the ``App``, which the core never imports."""

    debug: bool
    max_threads: int
    plugins: list[Any]
    state: SimpleNamespace

    def url_for(self, name: str, /, **params: Any) -> str:
        """Build the path of the route called ``name`` (without the root path)."""
        ...

    def _kind_of(self, name: str, preferred: str) -> str:
        """Return the kind (``"http"`` or ``"websocket"``) of the route ``url_for`` builds,
        ``preferred`` when routes of both kinds have the name."""
        ...
