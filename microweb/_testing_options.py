"""``TestClient``'s options, checked as they are given: each refusal names the option and
shows a value it takes."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, overload

import httpx

from ._app import App
from ._asgi import ASGIDriver
from ._router import Router, RouteRegistry
from ._target import root_path_refused
from ._testing_sides import browsers_url
from ._wsgi import WSGIDriver

INTERFACES = ("wsgi", "asgi", "both")


def check_interface(interface: str) -> None:
    if interface not in INTERFACES:
        raise ValueError(f"interface must be 'wsgi', 'asgi' or 'both', not {interface!r}")


def check_app(app: object) -> None:
    """Refuse a client's ``app`` that is no ``App``: the class ``App``, a ``Router`` (the
    class or one), what ``as_wsgi()`` or ``as_asgi()`` made, or any other callable, which
    failed only at the first request, with ``'Router' object has no attribute 'as_wsgi'`` or
    ``App.as_wsgi() missing 1 required positional argument: 'self'``.

    Raises:
        TypeError: For any of them, saying what to give.
    """
    if isinstance(app, App):
        return
    if isinstance(app, type) and issubclass(app, RouteRegistry) and not issubclass(app, Router):
        name = app.__name__
        raise TypeError(
            f"TestClient takes an App, not the class {name}: call it, {name}(), and register "
            "the routes on the app it makes"
        )
    if isinstance(app, Router) or (isinstance(app, type) and issubclass(app, Router)):
        given = "a Router" if isinstance(app, Router) else f"the class {app.__name__}"
        raise TypeError(
            f"TestClient takes an App, not a Router ({given}): include the router in an "
            "app, app = App(); app.include(router), and give it the app"
        )
    if isinstance(app, (WSGIDriver, ASGIDriver)):
        # NOTE: Starlette's client takes an ASGI callable: a port gives it app.as_asgi().
        made = "as_wsgi()" if isinstance(app, WSGIDriver) else "as_asgi()"
        raise TypeError(
            f"TestClient takes an App, not what its {made} made: give the app itself, "
            "TestClient(app), which drives as_wsgi() and as_asgi() as the interface says"
        )
    raise TypeError(
        f"TestClient takes a microweb App, not {type(app).__name__}: it drives the app's own "
        "as_wsgi() and as_asgi(); another WSGI or ASGI callable is for httpx's own transports"
    )


def check_flag(name: str, value: object) -> bool:
    """Return ``value`` if it is ``True`` or ``False``.

    Raises:
        TypeError: For anything else, which httpx and Starlette's client read by its truth:
            ``follow_redirects="no"`` followed redirects, ``raise_server_exceptions=0`` was off.
    """
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return value


class Flag:
    """An option of the client that is ``True`` or ``False``, checked as it is set (given to
    the client or assigned to it later)."""

    def __set_name__(self, owner: type, name: str) -> None:
        self._name, self._attribute = name, f"_{name}"

    @overload
    def __get__(self, client: None, owner: type) -> Flag: ...
    @overload
    def __get__(self, client: object, owner: type | None = None) -> bool: ...
    def __get__(self, client: object, owner: type | None = None) -> bool | Flag:
        if client is None:
            return self
        flag: bool = getattr(client, self._attribute)
        return flag

    def __set__(self, client: object, value: Any) -> None:
        setattr(client, self._attribute, check_flag(self._name, value))


def check_root_path(root_path: str) -> None:
    if root_path and (root_path[:1] != "/" or root_path[-1:] == "/" or "//" in root_path):
        # NOTE: "//app" made links ("//app/items") that a browser reads as on host "app".
        raise ValueError(
            f"root_path must start with '/' and not end with one, nor hold '//', such as "
            f"'/app', got {root_path!r}"
        )
    # NOTE: as microweb serve --root-path refuses it: taken, the app built links that led out
    # of it ("/a/../b/x") or nowhere, and a test passed for a mount no server would serve.
    refused = root_path_refused(root_path, "root_path") if root_path else None
    if refused is not None:
        raise ValueError(refused)


def ignored_headers(ignore_headers: Iterable[str]) -> frozenset[str]:
    """Return the header names a comparison of the two sides leaves out: ``Date`` and these."""
    if isinstance(ignore_headers, str):
        raise TypeError(f"ignore_headers takes a list of names: ({ignore_headers!r},)")
    return frozenset({"date", *(name.lower() for name in ignore_headers)})


def check_peer(client: object) -> tuple[str, int] | None:
    """Return ``client`` if it is a peer address a server could give: ``(host, port)``, or
    ``None`` for a peer with no address (a Unix socket's).

    Raises:
        TypeError: For anything else (a host alone, a one-item tuple).
    """
    if client is None:
        return None
    if (
        not isinstance(client, tuple)
        or len(client) != 2
        or not isinstance(client[0], str)
        or not isinstance(client[1], int)
        or isinstance(client[1], bool)
    ):
        raise TypeError(
            f"client must be a (host, port) tuple, such as ('203.0.113.7', 5000), or None for "
            f"a peer with no address (a Unix socket), got {client!r}"
        )
    return client


def browsers_base_url(base_url: str) -> httpx.URL:
    """Return ``base_url`` as a browser reads it, which requests go to.

    Raises:
        ValueError: For one that is no ``http://`` or ``https://`` URL with a host, or has a
            query or a fragment.
    """
    # NOTE: checked when set: "ftp://x" failed with KeyError('ftp') under WSGI where the
    # ASGI side served it, and "testserver" with a ValueError about a URL type.
    try:
        # NOTE: with an IP address host as a browser writes it, which requests go to: "Host:
        # 127.1" went out, and a redirect to 127.0.0.1 left the origin.
        url = browsers_url(base_url)
        # NOTE: httpx takes a port past 65535, which was sent, for the app's 400.
        usable = url.scheme in ("http", "https") and bool(url.host) and (url.port or 0) < 65536
    except (httpx.InvalidURL, UnicodeError):
        # NOTE: httpx's InvalidURL ("http://[::1"), or idna's UnicodeError for a host that
        # is no valid punycode ("http://xn--a"), came out where the others are ValueError.
        usable = False
    # NOTE: httpx puts a request's path after the whole of it: with "?a=1", "/x" was sent
    # as "/?a=1/x" (a 404).
    if not usable or {"?", "#"} & set(base_url):
        raise ValueError(
            f"base_url must be an http:// or https:// URL with a host, and no query nor "
            f"fragment, such as 'http://testserver', got {base_url!r}"
        )
    return url
