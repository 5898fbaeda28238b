"""A header line that no server passes on gets the 400 the servers answer, not the app."""

from __future__ import annotations

import pytest
from conftest import MakeClient

from microweb import App, Request

# NOTE: each refused with 400 before the app runs by Waitress, Uvicorn (h11 and httptools) and
# microweb serve under both servers (measured with a raw socket).
REFUSED = [
    (b"X Y", b"1"),
    (b"X(Y)", b"1"),
    (b"X@Y", b"1"),
    (b"X/Y", b"1"),
    (b"X{Y}", b"1"),
    (b"X-A", b"a\x00b"),
    (b"X-A", b"a\x01b"),
    (b"X-A", b"a\x7fb"),
    (b"X-A", b"a\rb"),
    (b"X-A", b"a\nb"),
]


def _app() -> App:
    app = App()
    calls: list[str] = []
    app.state.calls = calls

    @app.get("/h")
    def headers(request: Request) -> dict[str, list[list[str]]]:
        calls.append(request.path)
        return {"headers": [list(pair) for pair in request.headers.items()]}

    return app


@pytest.mark.parametrize(("name", "value"), REFUSED, ids=repr)
def test_a_header_line_no_server_passes_on_is_a_400_without_the_app(
    make_client: MakeClient, name: bytes, value: bytes
) -> None:
    app = _app()
    answer = make_client(app).get("/h", headers=[(name, value)])
    assert answer.status_code == 400
    assert app.state.calls == []


@pytest.mark.parametrize(
    ("name", "value"),
    [(b"X-A", b"a\tb"), (b"X-A", b"caf\xe9"), (b"X!#$%&'*+-.^_`|~1", b"1"), (b"X-A", b"")],
    ids=repr,
)
def test_a_header_line_every_server_passes_on_reaches_the_app(
    make_client: MakeClient, name: bytes, value: bytes
) -> None:
    app = _app()
    answer = make_client(app).get("/h", headers=[(name, value)])
    assert answer.status_code == 200
    assert app.state.calls == ["/h"]
