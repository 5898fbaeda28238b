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


@pytest.mark.parametrize("kind", ["init", "text", "json", "redirect", "stream", "sse", "file"])
@pytest.mark.parametrize("form", ["pairs", "iterator"])
def test_pairs_are_headers_in_every_factory(kind: str, form: str, tmp_path: Path) -> None:
    # NOTE: Response.sse() read its headers with .items(): pairs were an AttributeError, and
    # Response.file() read an iterator of pairs twice, the second time empty.
    given = GIVEN if form == "pairs" else iter(GIVEN)
    response = made_with(kind, given, tmp_path)  # type: ignore[arg-type]
    assert [pair for pair in response.headers.items() if pair in GIVEN] == GIVEN


def test_an_sse_content_type_in_pairs_is_refused() -> None:
    with pytest.raises(ValueError, match="EventSource requires"):
        Response.sse(iter(["x"]), headers=[("Content-Type", "text/plain")])
