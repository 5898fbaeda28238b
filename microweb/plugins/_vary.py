"""The ``Vary`` header, shared by the plugins whose answers depend on request headers."""

from __future__ import annotations

from microweb import Response


def add_vary(response: Response, name: str) -> None:
    """Add ``name`` to the response's ``Vary`` header unless it is listed already.

    Args:
        response: The response to change in place.
        name: A request header name, such as ``"Origin"``.
    """
    current = response.headers.get("vary")
    if not current:
        response.headers["vary"] = name
        return
    listed = {item.strip().lower() for item in current.split(",")}
    if name.lower() not in listed and "*" not in listed:
        response.headers["vary"] = f"{current}, {name}"
