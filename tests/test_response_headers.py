"""A ``Headers`` given as a response's headers is read as its pairs, as a mapping is: iterated, it
gives its names, and a two-letter name ("ab") became the header "a: b" (review168)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from microweb import Headers, Response

GIVEN = [("ab", "1"), ("x-total", "2"), ("set-cookie", "a=1"), ("set-cookie", "b=2")]


def made_with(kind: str, headers: Headers, tmp_path: Path) -> Response:
    if kind == "file":
        image = tmp_path / "icon.svgz"
        image.write_bytes(b"\x1f\x8b")
        return Response.file(image, headers=headers)
    factories: dict[str, Any] = {
        "init": lambda: Response(b"x", headers=headers),
        "text": lambda: Response.text("x", headers=headers),
        "json": lambda: Response.json([], headers=headers),
        "redirect": lambda: Response.redirect("/there", headers=headers),
        "stream": lambda: Response.stream(iter([b"x"]), headers=headers),
        "sse": lambda: Response.sse(iter(["x"]), headers=headers),
    }
    response: Response = factories[kind]()
    return response


@pytest.mark.parametrize("kind", ["init", "text", "json", "redirect", "stream", "sse", "file"])
def test_a_headers_object_gives_its_pairs(kind: str, tmp_path: Path) -> None:
    response = made_with(kind, Headers(GIVEN), tmp_path)
    assert [pair for pair in response.headers.items() if pair in GIVEN] == GIVEN
    assert "a" not in response.headers
