"""A ``Headers`` given as a response's headers is read as its pairs, as a mapping is: iterated, it
gives its names, and a two-letter name ("ab") became the header "a: b" (review168)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import MakeClient, traced_lines

from microweb import App, Headers, Request, Response

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


# NOTE: twice the default max_headers: what an app copying a client's headers may set.
COPIED = 2000


def set_one_by_one(headers: Headers, count: int) -> None:
    """Set ``count`` headers in the ways an app copies them: most names new, a few repeated."""
    for i in range(count):
        if i % 10 == 0:
            headers.add("Set-Cookie", f"c{i}=1")
        elif i % 10 == 1:
            headers.setdefault("X-Default", f"d{i}")
        elif i % 10 == 2:
            headers[f"X-Again-{i % 7}"] = f"a{i}"
        else:
            headers[f"X-Header-{i}"] = f"h{i}"


def expected_lines(count: int) -> list[tuple[str, str]]:
    """The lines ``set_one_by_one`` leaves, in order: a repeated ``[]=`` moves its name last."""
    lines: list[tuple[str, str]] = []
    for i in range(count):
        if i % 10 == 0:
            lines.append(("set-cookie", f"c{i}=1"))
        elif i % 10 == 1:
            if not any(name == "x-default" for name, _ in lines):
                lines.append(("x-default", f"d{i}"))
        else:
            name = f"x-again-{i % 7}" if i % 10 == 2 else f"x-header-{i}"
            lines = [line for line in lines if line[0] != name]
            lines.append((name, f"a{i}" if i % 10 == 2 else f"h{i}"))
    return lines


def test_thousands_of_headers_set_one_by_one_reach_the_client(make_client: MakeClient) -> None:
    app = App()

    @app.get("/many")
    def many(request: Request) -> Response:
        response = Response(b"many")
        set_one_by_one(response.headers, COPIED)
        return response

    response = make_client(app).get("/many")
    assert response.status_code == 200 and response.content == b"many"
    sent = [(name, value) for name, value in response.headers.multi_items() if name != "date"]
    framework = {"content-length", "content-type", "server"}
    assert [line for line in sent if line[0] not in framework] == expected_lines(COPIED)
    assert len(response.headers.get_list("set-cookie")) == COPIED // 10


def test_headers_set_one_by_one_cost_lines_in_proportion() -> None:
    # NOTE: each headers[name] = value, setdefault() and single-valued add() went over every
    # line: 1,000 headers copied into a response took 15 ms, 2,000 took 47 (review296).
    # Counted in Python lines run, never timed.
    def cost(count: int) -> int:
        response = Response(b"x")
        lines, _ = traced_lines(lambda: set_one_by_one(response.headers, count))
        assert response.headers.items() == expected_lines(count)
        reads, _ = traced_lines(
            lambda: [
                (name in response.headers, response.headers.get(name)) for name in response.headers
            ]
        )
        return lines + reads

    small, large = cost(COPIED // 2), cost(COPIED)
    assert large < 2.2 * small, (small, large)
    assert large < 60 * COPIED, large
