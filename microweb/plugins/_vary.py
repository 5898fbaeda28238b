"""The ``Vary`` header, shared by the plugins whose answers depend on request headers."""

from __future__ import annotations

from microweb import Response


def add_vary(response: Response, name: str) -> None:
    """Add ``name`` to the response's ``Vary`` header unless it is listed already.

    Every ``Vary`` line the response has (a handler may add several) is kept: they are joined
    into one line, which means the same (RFC 9110 5.3).

    Args:
        response: The response to change in place.
        name: A request header name, such as ``"Origin"``.
    """
    lines = [line.strip() for line in response.headers.getlist("vary") if line.strip()]
    if not lines:
        response.headers["vary"] = name
        return
    current = ", ".join(lines)
    listed = {item.strip().lower() for item in current.split(",")}
    if name.lower() not in listed and "*" not in listed:
        response.headers["vary"] = f"{current}, {name}"
