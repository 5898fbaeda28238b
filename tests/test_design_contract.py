"""The public spellings of /work/shared/DESIGN.md, each checked once, under both interfaces.

This module is a map from the design's contract to behaviour: a name, a default, a status or an
error type that DESIGN.md gives is pinned here, so that a change to one of them fails a test that
says which line of the contract it breaks. The behaviours themselves are tested in depth by the
modules of their own concepts.
"""

from __future__ import annotations

import inspect
import uuid
import warnings
from typing import Any

import pytest
from conftest import MakeClient, in_colour

import microweb
from microweb import (
    App,
    HTTPError,
    InterfaceWarning,
    Limits,
    Request,
    Response,
    Router,
    WebSocket,
    WebSocketDisconnect,
)
from microweb.testing import TestClient

KIB = 1024
MIB = 1024 * KIB


def defaults(function: Any) -> dict[str, Any]:
    """The parameters of ``function`` that have defaults, with them."""
    parameters = inspect.signature(function).parameters.values()
    return {p.name: p.default for p in parameters if p.default is not inspect.Parameter.empty}


def test_section_2_public_names_are_microwebs() -> None:
    for name in ("App", "Request", "Response", "HTTPError", "Router", "Limits", "InterfaceWarning"):
        assert getattr(microweb, name).__module__ == "microweb"
        assert name in microweb.__all__


def test_section_2_and_5_signatures_and_defaults() -> None:
    assert defaults(App) == {"debug": False, "limits": None, "max_threads": 40}
    response = defaults(Response)
    assert response == {"body": b"", "status": 200, "headers": None, "media_type": None}
    assert defaults(Response.redirect)["status"] == 307
    assert defaults(HTTPError) == {"detail": None, "headers": None}
    assert defaults(WebSocket.accept)["subprotocol"] is None
    assert defaults(WebSocket.close)["code"] == 1000
    assert WebSocketDisconnect(1001).code == 1001
    client_options = defaults(TestClient)
    assert client_options["follow_redirects"] is False
    assert tuple(client_options["ignore_headers"]) == ()


def test_section_3_limit_defaults() -> None:
    limits = Limits()
    assert limits.max_body_size == 10 * MIB
    assert limits.max_form_parts == 1000
    assert limits.max_field_size == 64 * KIB
    assert limits.max_form_memory == 1 * MIB
    assert (limits.max_part_header_size, limits.max_part_headers) == (4 * KIB, 8)
    assert limits.spool_threshold == 1 * MIB
    assert limits.max_query_params == 1000


def test_section_2_return_values(make_client: MakeClient, colour: str) -> None:
    app = App()
    answers: dict[str, Any] = {
        "/str": "Hello, World!",
        "/bytes": b"raw",
        "/dict": {"id": 1},
        "/list": [1, 2],
        "/none": None,
        "/pair": ("made", 201),
        "/triple": ("made", 202, {"x-made": "yes"}),
    }
    for path, value in answers.items():
        app.get(path, name=path)(in_colour(colour, lambda request, value=value: value))
    client = make_client(app)
    text = client.get("/str")
    assert (text.headers["content-type"], text.text) == (
        "text/plain; charset=utf-8",
        answers["/str"],
    )
    assert client.get("/dict").json() == {"id": 1}
    assert client.get("/list").headers["content-type"] == "application/json"
    assert client.get("/none").status_code == 204
    assert client.get("/pair").status_code == 201
    triple = client.get("/triple")
    assert (triple.status_code, triple.headers["x-made"]) == (202, "yes")


def test_section_2_routing(make_client: MakeClient) -> None:
    app = App()

    @app.get("/users/{user_id:int}", name="user")
    async def user(request: Request, user_id: int) -> dict[str, Any]:
        return {"id": user_id, "params": dict(request.path_params)}

    @app.get("/kinds/{f:float}/{u:uuid}/{rest:path}")
    def kinds(request: Request, f: float, u: uuid.UUID, rest: str) -> list[Any]:
        return [f, str(u), rest, isinstance(u, uuid.UUID)]

    @app.post("/users/{user_id}")
    def rename(request: Request, user_id: str) -> str:
        return user_id

    api = Router(prefix="/api")

    @api.get("/ping", name="ping")
    def ping(request: Request) -> str:
        return request.url_for("ping")

    app.include(api)
    client = make_client(app)
    assert client.get("/users/7").json() == {"id": 7, "params": {"user_id": 7}}
    some = uuid.uuid4()
    assert client.get(f"/kinds/1.5/{some}/a/b").json() == [1.5, str(some), "a/b", True]
    assert client.get("/nowhere").status_code == 404
    refused = client.delete("/users/7")
    assert (refused.status_code, refused.headers["allow"]) == (405, "GET, HEAD, OPTIONS, POST")
    head = client.head("/users/7")
    assert (head.status_code, head.content) == (200, b"")
    options = client.options("/users/7")
    assert options.headers["allow"] == "GET, HEAD, OPTIONS, POST"
    assert (app.url_for("user", user_id=3), client.get("/api/ping").text) == (
        "/users/3",
        "/api/ping",
    )
    with pytest.raises(ValueError):
        app.get("/api/ping")(ping)


def test_section_2_request_body_errors(make_client: MakeClient, colour: str) -> None:
    app = App(limits=Limits(max_body_size=100))

    def as_json(request: Request) -> Any:
        return request.json()

    async def as_json_async(request: Request) -> Any:
        return await request.ajson()

    app.post("/json")(as_json if colour == "sync" else as_json_async)
    client = make_client(app)
    json_type = {"content-type": "application/json"}
    assert client.post("/json", content=b"{bad", headers=json_type).status_code == 400
    assert (
        client.post("/json", content=b"{}", headers={"content-type": "text/plain"}).status_code
        == 415
    )
    utf16 = '{"a": 1}'.encode("utf-16")
    assert client.post("/json", content=utf16, headers=json_type).status_code == 400
    vendor = client.post("/json", content=b"[1]", headers={"content-type": "application/x+json"})
    assert vendor.json() == [1]
    assert (
        client.post("/json", content=b"[" + b"0," * 60 + b"0]", headers=json_type).status_code
        == 413
    )


def test_section_2_sync_body_read_on_a_loop_names_the_async_twin(make_client: MakeClient) -> None:
    app = App()
    seen: list[str] = []

    @app.post("/")
    async def wrong(request: Request) -> str:
        try:
            request.read()
        except RuntimeError as exc:
            seen.append(str(exc))
        return "ok"

    make_client(app).post("/", content=b"x")
    assert "aread()" in seen[0]


def test_section_2_errors(make_client: MakeClient) -> None:
    app = App()

    @app.get("/teapot")
    def teapot(request: Request) -> None:
        raise HTTPError(418, "short and stout", headers={"x-kind": "pot"})

    @app.get("/boom")
    def boom(request: Request) -> None:
        raise RuntimeError("a secret in a traceback")

    client = make_client(app)
    plain = client.get("/teapot")
    assert (plain.status_code, plain.text, plain.headers["x-kind"]) == (
        418,
        "short and stout",
        "pot",
    )
    as_json = client.get("/teapot", headers={"accept": "application/json"})
    assert as_json.json() == {"status": 418, "detail": "short and stout"}
    failed = client.get("/boom")
    assert failed.status_code == 500
    assert b"secret" not in failed.content


def test_section_2_header_values_with_line_breaks_are_refused() -> None:
    response = Response()
    with pytest.raises(ValueError):
        response.headers["x-split"] = "a\r\nb"


def test_section_2_websocket_routes_under_wsgi_warn_once_and_refuse_clearly() -> None:
    app = App()

    @app.websocket("/ws")
    async def ws(socket: WebSocket) -> None:
        await socket.accept()

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        app.as_wsgi().close()
        app.as_wsgi().close()
    assert [w.category for w in caught] == [InterfaceWarning]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InterfaceWarning)
        with TestClient(app, interface="wsgi") as client:
            refused = client.get("/ws")
    assert refused.status_code >= 400
    assert "as_asgi()" in refused.text
