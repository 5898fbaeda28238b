"""Flash messages under both interfaces: kept in the session, read once, after a redirect."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import markupsafe
import pytest
from conftest import MakeClient, in_colour

from microweb import App, HTTPError, Request, Response
from microweb.plugins import Sessions, TrustedHosts, flash, get_flashed_messages
from microweb.plugins.flashes import MAX_FLASHES
from microweb.templating import Templates
from microweb.testing import TestClient

SECRET = "a-test-secret-of-32-characters!!"


def flash_app(colour: str = "sync") -> App:
    """An app whose ``/save`` flashes and redirects, and whose ``/show`` reads the messages."""
    app = App()
    app.install(Sessions(SECRET, secure=False))

    def save(request: Request) -> Response:
        flash(request, "Note saved.")
        flash(request, "Disk nearly full.", "warning")
        return Response.redirect(request.url_for("show"), status=303)

    def show(request: Request) -> dict[str, Any]:
        wanted = request.query.getlist("category")
        return {
            "pairs": get_flashed_messages(request, with_categories=True, category_filter=wanted),
            "again": get_flashed_messages(request),
        }

    def look(request: Request) -> dict[str, Any]:
        return dict(request.session)

    app.post("/save")(in_colour(colour, save))
    app.get("/show", name="show")(in_colour(colour, show))
    app.get("/look")(in_colour(colour, look))
    return app


def test_a_flash_is_shown_once_after_a_redirect(make_client: MakeClient, colour: str) -> None:
    client = make_client(flash_app(colour))
    saved = client.post("/save")
    assert (saved.status_code, saved.headers["location"]) == (303, "/show")
    assert "set-cookie" in saved.headers
    shown = client.get("/show")
    assert shown.json()["pairs"] == [["message", "Note saved."], ["warning", "Disk nearly full."]]
    # NOTE: reading removed them, so the session changed: its cookie is written again.
    assert "set-cookie" in shown.headers
    assert client.get("/show").json() == {"pairs": [], "again": []}


def test_flash_then_follow_the_redirect(make_client: MakeClient) -> None:
    client = make_client(flash_app())
    shown = client.post("/save", follow_redirects=True)
    assert shown.json()["again"] == ["Note saved.", "Disk nearly full."]


def test_two_reads_in_one_request_give_the_same_messages(
    make_client: MakeClient, colour: str
) -> None:
    client = make_client(flash_app(colour))
    client.post("/save")
    # NOTE: the first read, filtered, takes every message out of the session; the second,
    # unfiltered, still sees them all.
    shown = client.get("/show", params={"category": "warning"})
    assert shown.json() == {
        "pairs": [["warning", "Disk nearly full."]],
        "again": ["Note saved.", "Disk nearly full."],
    }
    assert client.get("/show").json() == {"pairs": [], "again": []}


def test_category_filter_takes_one_str_or_several(make_client: MakeClient) -> None:
    app = App()
    app.install(Sessions(SECRET, secure=False))

    @app.post("/save")
    def save(request: Request) -> None:
        for category in ("error", "info", "success"):
            flash(request, f"an {category}", category)

    @app.get("/show")
    def show(request: Request) -> dict[str, Any]:
        return {
            "one": get_flashed_messages(request, category_filter="error"),
            "two": get_flashed_messages(request, category_filter=("info", "success")),
            "none": get_flashed_messages(request, category_filter=["debug"]),
        }

    client = make_client(app)
    client.post("/save")
    assert client.get("/show").json() == {
        "one": ["an error"],
        "two": ["an info", "an success"],
        "none": [],
    }


def test_a_flash_after_the_read_waits_for_the_next_request(make_client: MakeClient) -> None:
    app = App()
    app.install(Sessions(SECRET, secure=False))

    @app.get("/page")
    async def page(request: Request) -> list[str]:
        shown = get_flashed_messages(request)
        flash(request, f"flashed after {shown}")
        assert get_flashed_messages(request) == shown
        return shown

    client = make_client(app)
    assert client.get("/page").json() == []
    assert client.get("/page").json() == ["flashed after []"]
    assert client.get("/page").json() == ["flashed after ['flashed after []']"]


def test_nothing_flashed_nor_waiting_sends_no_cookie(make_client: MakeClient) -> None:
    client = make_client(flash_app())
    assert "set-cookie" not in client.get("/show").headers
    client.post("/save")
    client.get("/show")  # the messages are read: the cookie is deleted, the session now empty
    unchanged = client.get("/show")
    assert unchanged.json() == {"pairs": [], "again": []}
    assert "set-cookie" not in unchanged.headers


def test_reading_leaves_the_rest_of_the_session(make_client: MakeClient) -> None:
    app = flash_app()

    @app.post("/login")
    def login(request: Request) -> None:
        request.session["user"] = "ada"

    client = make_client(app)
    client.post("/login")
    client.post("/save")
    assert client.get("/look").json()["_flashes"][0] == ["message", "Note saved."]
    client.get("/show")
    assert client.get("/look").json() == {"user": "ada"}
    assert "set-cookie" not in client.get("/show").headers


@pytest.mark.parametrize("status", [403, 404])
def test_a_flash_before_an_http_error_is_kept(make_client: MakeClient, status: int) -> None:
    app = flash_app()

    @app.post("/refuse")
    def refuse(request: Request) -> None:
        flash(request, "Not yours.", "error")
        raise HTTPError(status)

    client = make_client(app)
    refused = client.post("/refuse")
    assert refused.status_code == status
    assert "set-cookie" in refused.headers
    assert client.get("/show").json()["pairs"] == [["error", "Not yours."]]


def test_a_flash_before_a_500_is_lost_with_the_session(make_client: MakeClient) -> None:
    app = flash_app()

    @app.post("/crash")
    def crash(request: Request) -> None:
        flash(request, "Saved.")
        raise ValueError("a bug")

    client = make_client(app)
    assert client.post("/crash").status_code == 500
    assert client.get("/show").json()["again"] == []


def test_without_sessions_a_runtime_error_says_to_install_them(make_client: MakeClient) -> None:
    app = App()
    caught: list[str] = []

    @app.get("/")
    def index(request: Request) -> None:
        for call in (lambda: flash(request, "hi"), lambda: get_flashed_messages(request)):
            with pytest.raises(RuntimeError, match=r"app\.install\(Sessions") as info:
                call()
            caught.append(str(info.value))

    assert make_client(app).get("/").status_code == 204
    assert len(caught) == 2


@pytest.mark.parametrize(
    ("message", "category", "error"),
    [
        (b"bytes", "message", "a flashed message must be a str, not bytes"),
        (42, "message", "a flashed message must be a str, not int"),
        ("fine", None, "a flashed category must be a str, not NoneType"),
        (markupsafe.Markup("<b>saved</b>"), "message", "a flashed message is plain text"),
    ],
)
def test_a_message_or_category_that_is_no_text_is_refused_at_flash_time(
    make_client: MakeClient, message: Any, category: Any, error: str
) -> None:
    app = flash_app()

    @app.post("/bad")
    def bad(request: Request) -> str:
        with pytest.raises(TypeError, match=error):
            flash(request, message, category)
        return "refused"

    client = make_client(app)
    answer = client.post("/bad")
    assert (answer.status_code, answer.text) == (200, "refused")
    assert "set-cookie" not in answer.headers


def test_a_message_with_a_lone_surrogate_is_shown_with_a_replacement_character(
    make_client: MakeClient,
) -> None:
    # NOTE: a file name read with os.listdir() keeps an undecodable byte as a lone surrogate,
    # which UTF-8 can't encode: "Deleted <name>." was a 500 when the session was saved, after
    # the handler had deleted the file.
    app = flash_app()

    @app.post("/delete")
    def delete(request: Request) -> Response:
        flash(request, "Deleted r\udcffport.txt.", "\ud800info")
        return Response.redirect("/show", status=303)

    client = make_client(app)
    assert client.post("/delete").status_code == 303
    assert client.get("/show").json()["pairs"] == [["\ufffdinfo", "Deleted r\ufffdport.txt."]]


def test_the_oldest_messages_give_way_past_the_cap(
    make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    app = flash_app()

    @app.post("/many")
    def many(request: Request) -> None:
        for number in range(MAX_FLASHES + 2):
            flash(request, str(number))

    client = make_client(app)
    with caplog.at_level(logging.WARNING, logger="microweb.flashes"):
        client.post("/many")
    assert caplog.text.count("the oldest is dropped") == 2
    shown = client.get("/show").json()["again"]
    assert shown == [str(number) for number in range(2, MAX_FLASHES + 2)]


def test_a_session_value_that_is_no_flash_is_skipped(make_client: MakeClient) -> None:
    app = flash_app()

    @app.post("/odd")
    def odd(request: Request) -> None:
        request.session["_flashes"] = [["info", "kept"], "odd", ["a", "b", "c"], [1, "x"]]

    @app.post("/not-a-list")
    def not_a_list(request: Request) -> None:
        request.session["_flashes"] = {"info": "odd"}
        flash(request, "fresh")

    client = make_client(app)
    client.post("/odd")
    assert client.get("/show").json()["again"] == ["kept"]
    client.post("/not-a-list")
    assert client.get("/show").json()["again"] == ["fresh"]


def test_a_template_shows_the_messages_without_the_request_passed(
    make_client: MakeClient, tmp_path: Path, colour: str
) -> None:
    (tmp_path / "base.html").write_text(
        "{% for category, message in get_flashed_messages(with_categories=true) %}"
        '<p class="{{ category }}">{{ message }}</p>'
        "{% endfor %}{% block body %}{% endblock %}"
    )
    (tmp_path / "page.html").write_text(
        '{% extends "base.html" %}{% block body %}'
        "errors: {{ get_flashed_messages(category_filter=['error'])|join(',') }}"
        "{% endblock %}"
    )
    templates = Templates(tmp_path)
    app = App()
    app.install(Sessions(SECRET, secure=False))

    @app.post("/save")
    def save(request: Request) -> Response:
        flash(request, "<Saved> & done")
        flash(request, "Bad title", "error")
        return Response.redirect("/page", status=303)

    def page(request: Request) -> Response:
        return templates.render(request, "page.html")

    app.get("/page")(in_colour(colour, page))
    client = make_client(app)
    shown = client.post("/save", follow_redirects=True)
    assert shown.text == (
        '<p class="message">&lt;Saved&gt; &amp; done</p>'
        '<p class="error">Bad title</p>errors: Bad title'
    )
    assert client.get("/page").text == "errors: "


def test_a_template_without_sessions_renders_until_it_calls_for_messages(
    tmp_path: Path,
) -> None:
    (tmp_path / "plain.html").write_text("{{ request.path }}")
    (tmp_path / "flashes.html").write_text("{{ get_flashed_messages() }}")
    templates = Templates(tmp_path)
    app = App()

    @app.get("/{name}")
    def page(request: Request, name: str) -> Response:
        return templates.render(request, f"{name}.html")

    with TestClient(app, interface="both", raise_server_exceptions=False) as client:
        assert client.get("/plain").text == "/plain"
        assert client.get("/flashes").status_code == 500


def test_an_error_page_answered_outside_the_sessions_flow_reads_no_messages(
    make_client: MakeClient, tmp_path: Path
) -> None:
    # NOTE: TrustedHosts' flow is outside Sessions': its refusal's page, rendered with a base
    # template that shows the messages, raised request.session's RuntimeError, a 500.
    (tmp_path / "error.html").write_text("{{ get_flashed_messages() }} {{ status }}")
    templates = Templates(tmp_path)
    app = App()
    app.install(TrustedHosts(["testserver"]))
    app.install(Sessions(SECRET, secure=False))

    @app.error_handler(400)
    def bad_request(request: Request, exc: HTTPError) -> Response:
        return templates.render(request, "error.html", {"status": 400}, status=400)

    @app.post("/save")
    def save(request: Request) -> str:
        flash(request, "Note saved.")
        return "saved"

    @app.get("/show")
    def show(request: Request) -> list[str]:
        return get_flashed_messages(request)

    client = make_client(app)
    client.post("/save")
    refused = client.get("/show", headers={"host": "elsewhere.example"})
    assert (refused.status_code, refused.text) == (400, "[] 400")
    # NOTE: the message still waits for a page of the app's own host.
    assert client.get("/show").json() == ["Note saved."]


def test_an_error_page_answered_outside_the_sessions_flow_reads_an_empty_session(
    make_client: MakeClient, tmp_path: Path
) -> None:
    # NOTE: a base template that says who is logged in made TrustedHosts' 400 a 500.
    (tmp_path / "error.html").write_text("[{{ request.session.get('user', 'nobody') }}]")
    templates = Templates(tmp_path)
    app = App()
    app.install(TrustedHosts(["testserver"]))
    app.install(Sessions(SECRET, secure=False))
    changed: list[str] = []

    @app.error_handler(400)
    def bad_request(request: Request, exc: HTTPError) -> Response:
        try:
            request.session["seen"] = True
        except RuntimeError as error:
            changed.append(str(error))
        return templates.render(request, "error.html", status=400)

    @app.post("/login")
    def login(request: Request) -> str:
        request.session["user"] = "ada"
        return "in"

    client = make_client(app)
    client.post("/login")
    refused = client.get("/anything", headers={"host": "elsewhere.example"})
    assert (refused.status_code, refused.text) == (400, "[nobody]")
    assert "set-cookie" not in refused.headers
    assert changed and "session was not loaded" in changed[0]
