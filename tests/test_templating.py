"""Templates: Jinja2 pages as responses, escaping, compiled up front, under both interfaces."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jinja2
import pytest
from conftest import MakeClient, in_colour
from drive import asgi_get, requests_left_in_cycles, wsgi_get

from microweb import App, Request, Response
from microweb.plugins import Sessions, flash
from microweb.templating import Templates
from microweb.testing import TestClient


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "base.html").write_text(
        "<title>{% block title %}{% endblock %}</title>{% block body %}{% endblock %}"
    )
    (tmp_path / "page.html").write_text(
        '{% extends "base.html" %}{% block title %}{{ title }}{% endblock %}'
        "{% block body %}<p>{{ message }}</p>"
        "<a href=\"{{ url_for('note', note_id=7) }}\">{{ request.method }} {{ request.path }}</a>"
        "{% endblock %}"
    )
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "item.txt").write_text("{{ text }}")
    return tmp_path


def _app(templates: Templates, colour: str) -> App:
    app = App()

    if colour == "sync":

        @app.get("/page")
        def page(request: Request) -> Response:
            context = {"title": "Notes", "message": request.query.get("m", "")}
            return templates.render(request, "page.html", context)

    else:

        @app.get("/page")
        async def page(request: Request) -> Response:
            context = {"title": "Notes", "message": request.query.get("m", "")}
            return templates.render(request, "page.html", context)

    @app.get("/notes/{note_id:int}", name="note")
    def note(request: Request, note_id: int) -> str:
        return str(note_id)

    return app


def test_render_puts_request_and_url_for_into_the_context(
    folder: Path, make_client: MakeClient, colour: str
) -> None:
    client = make_client(_app(Templates(folder), colour))
    response = client.get("/page", params={"m": "hi"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.text == '<title>Notes</title><p>hi</p><a href="/notes/7">GET /page</a>'


def test_values_are_escaped(folder: Path, make_client: MakeClient, colour: str) -> None:
    client = make_client(_app(Templates(folder), colour))
    response = client.get("/page", params={"m": "<script>alert('x')</script>"})
    assert "<p>&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;</p>" in response.text


def test_every_template_escapes_whatever_its_name(folder: Path) -> None:
    templates = Templates(folder)
    assert templates.env.get_template("notes/item.txt").render(text="<b>") == "&lt;b&gt;"
    assert templates.env.from_string("{{ x }}").render(x="<b>") == "&lt;b&gt;"
    assert templates.env.from_string("{{ x|safe }}").render(x="<b>") == "<b>"


def test_autoescape_can_be_chosen_explicitly(folder: Path) -> None:
    select = jinja2.select_autoescape(["html"], default_for_string=False)
    templates = Templates(folder, autoescape=select)
    assert templates.env.get_template("notes/item.txt").render(text="<b>") == "<b>"


def test_the_autoescape_rule_the_docs_give_leaves_only_txt_files_unescaped(folder: Path) -> None:
    (folder / "page.html.j2").write_text("{{ text }}")
    templates = Templates(folder, autoescape=lambda name: not (name or "").endswith(".txt"))
    assert templates.env.get_template("notes/item.txt").render(text="<b>") == "<b>"
    assert templates.env.get_template("page.html.j2").render(text="<b>") == "&lt;b&gt;"
    assert templates.env.from_string("{{ text }}").render(text="<b>") == "&lt;b&gt;"


def test_status_and_headers(folder: Path, make_client: MakeClient) -> None:
    templates = Templates(folder)
    app = App()

    @app.get("/missing")
    def missing(request: Request) -> Response:
        context = {"title": "Gone", "message": "no such note"}
        return templates.render(request, "page.html", context, status=404, headers={"x-a": "1"})

    @app.get("/notes/{note_id:int}", name="note")
    def note(request: Request, note_id: int) -> str:
        return str(note_id)

    response = make_client(app).get("/missing")
    assert (response.status_code, response.headers["x-a"]) == (404, "1")
    assert "<p>no such note</p>" in response.text


def test_a_content_type_in_the_headers_wins(folder: Path, make_client: MakeClient) -> None:
    # NOTE: a text template (a plain-text mail preview) rendered with its own Content-Type was
    # sent as text/html all the same.
    templates = Templates(folder)
    app = App()
    plain = {"content-type": "text/plain; charset=utf-8"}

    @app.get("/item")
    def item(request: Request) -> Response:
        return templates.render(request, "notes/item.txt", {"text": "hi"}, headers=plain)

    response = make_client(app).get("/item")
    assert response.headers.get_list("content-type") == ["text/plain; charset=utf-8"]
    assert response.text == "hi"


def test_context_keys_win_over_the_defaults(folder: Path, make_client: MakeClient) -> None:
    (folder / "who.html").write_text("{{ request }}")
    templates = Templates(folder)
    app = App()

    @app.get("/")
    def index(request: Request) -> Response:
        return templates.render(request, "who.html", {"request": "mine"})

    assert make_client(app).get("/").text == "mine"


def test_context_processors_add_variables_to_every_render(
    folder: Path, make_client: MakeClient, colour: str
) -> None:
    (folder / "who.html").write_text("{{ user }} {{ site }} {{ request.path }}")

    def user(request: Request) -> dict[str, str]:
        return {"user": request.headers.get("x-user", "nobody"), "site": "notes"}

    def site(request: Request) -> dict[str, str]:
        return {"site": "shop"}  # NOTE: a later processor wins over user()'s "notes".

    templates = Templates(folder, context_processors=[user, site])
    app = App()

    if colour == "sync":

        @app.get("/who")
        def who(request: Request) -> Response:
            return templates.render(request, "who.html")

    else:

        @app.get("/who")
        async def who(request: Request) -> Response:
            return templates.render(request, "who.html")

    @app.get("/mine")
    def mine(request: Request) -> Response:
        return templates.render(request, "who.html", {"user": "from the context"})

    client = make_client(app)
    assert client.get("/who", headers={"x-user": "ada"}).text == "ada shop /who"
    assert client.get("/who").text == "nobody shop /who"
    assert client.get("/mine").text == "from the context shop /mine"


def test_context_processors_are_checked(folder: Path, make_client: MakeClient) -> None:
    def user(request: Request) -> dict[str, str]:
        return {"user": "ada"}

    async def later(request: Request) -> dict[str, str]:
        return {}

    with pytest.raises(TypeError, match="takes a list of functions"):
        Templates(folder, context_processors=user)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="must be a def function"):
        Templates(folder, context_processors=[later])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="must be a def function"):
        Templates(folder, context_processors=["user"])  # type: ignore[list-item]

    def yielded(request: Request) -> Iterator[dict[str, str]]:
        yield {"user": "ada"}

    # NOTE: taken, every render failed with a 500 ("returned generator, not a mapping").
    with pytest.raises(TypeError, match="is a generator function: return the dict"):
        Templates(folder, context_processors=[yielded])  # type: ignore[list-item]
    # NOTE: review140: Flask's processors take no argument; taken, every render() was a 500.
    with pytest.raises(TypeError, match=r"must accept being called as \(request\)"):
        Templates(folder, context_processors=[lambda: {"user": "ada"}])  # type: ignore[list-item]
    (folder / "who.html").write_text("{{ user }}")
    templates = Templates(folder, context_processors=[lambda request: ["user"]])  # type: ignore[list-item, return-value]
    app = App()

    @app.get("/")
    def index(request: Request) -> Response:
        try:
            return templates.render(request, "who.html")
        except TypeError as exc:
            return Response.text(str(exc))

    assert "returned list, not a mapping of template variables" in make_client(app).get("/").text


@pytest.mark.parametrize("how", ["render", "stream"])
def test_a_processor_that_returns_a_coroutine_closes_it(
    folder: Path, make_client: MakeClient, colour: str, how: str
) -> None:
    # NOTE: a lambda around an async call: the coroutine was left open, and the garbage
    # collector later warned that it was never awaited, at an unrelated line.
    made: list[Any] = []

    async def user(request: Request) -> dict[str, str]:
        return {"user": "ada"}

    def wrapped(request: Request) -> Any:
        made.append(user(request))
        return made[-1]

    (folder / "who.html").write_text("{{ user }}")
    templates = Templates(folder, context_processors=[wrapped])

    def index(request: Request) -> Response:
        try:
            return getattr(templates, how)(request, "who.html")  # type: ignore[no-any-return]
        except TypeError as exc:
            return Response.text(str(exc))

    app = App()
    app.get("/")(in_colour(colour, index))
    text = make_client(app).get("/").text
    assert "returned a coroutine, which render() can't await" in text
    assert made[0].cr_frame is None  # NOTE: closed (a coroutine never started has a frame).


@pytest.mark.parametrize("how", ["render", "stream"])
def test_the_name_given_first_is_a_clear_type_error(folder: Path, how: str) -> None:
    # NOTE: Starlette's TemplateResponse(name, {"request": request}) and Flask's
    # render_template(name) put the name first: the error was "'str' object has no attribute
    # 'url_for'".
    templates = Templates(folder)
    with pytest.raises(TypeError, match=r"request first.*render\(request, 'page.html'"):
        getattr(templates, how)("page.html", {"request": None})


def test_macros_imported_without_context_see_request_url_for_and_flashes(
    folder: Path, make_client: MakeClient
) -> None:
    # NOTE: Flask's url_for, get_flashed_messages and request are Jinja globals, so a macro
    # file imported the usual way ({% import %}, {% from ... import %}) calls them; they were
    # undefined there (a 500), as an import without context sees globals only.
    (folder / "links.html").write_text(
        "{% macro home() %}<a href=\"{{ url_for('note', note_id=1) }}\">"
        "{{ request.path }}</a>{% endmacro %}"
    )
    (folder / "nav.html").write_text(
        '{% import "links.html" as links %}'
        "{% macro nav() %}{{ links.home() }}"
        "{% for message in get_flashed_messages() %}!{{ message }}{% endfor %}{% endmacro %}"
    )
    (folder / "menu.html").write_text(
        '{% import "nav.html" as n %}{% from "links.html" import home %}{{ n.nav() }} {{ home() }}'
    )
    templates = Templates(folder)
    app = App()
    app.install(Sessions("a-test-secret-of-32-characters!!", secure=False))

    @app.get("/menu/{tag}")
    def menu(request: Request, tag: str) -> Response:
        flash(request, tag)
        return templates.render(request, "menu.html")

    @app.get("/notes/{note_id:int}", name="note")
    def note(request: Request, note_id: int) -> str:
        return str(note_id)

    client = make_client(app)
    for tag in ("a", "b"):  # each request its own: no module kept from the first
        page = client.get(f"/menu/{tag}")
        assert page.status_code == 200, page.text
        link = f'<a href="/notes/1">/menu/{tag}</a>'
        assert page.text == f"{link}!{tag} {link}"


def test_url_for_includes_the_root_path(folder: Path) -> None:
    app = _app(Templates(folder), "sync")
    status, body = wsgi_get(app.as_wsgi(), "/page", SCRIPT_NAME="/app")
    assert status.startswith("200") and b'href="/app/notes/7"' in body
    status_code, body = asyncio.run(asgi_get(app.as_asgi(), "/app/page", root_path="/app"))
    assert status_code == 200 and b'href="/app/notes/7"' in body


def test_a_missing_template_is_a_logged_500(
    folder: Path, make_client: MakeClient, colour: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="microweb")
    templates = Templates(folder)
    app = App()

    if colour == "sync":

        @app.get("/")
        def index(request: Request) -> Response:
            return templates.render(request, "nope.html")

    else:

        @app.get("/")
        async def index(request: Request) -> Response:
            return templates.render(request, "nope.html")

    assert make_client(app).get("/").status_code == 500
    errors = [r.exc_info[1] for r in caplog.records if r.exc_info]
    assert any(isinstance(e, jinja2.TemplateNotFound) for e in errors)


@pytest.mark.parametrize("how", ["render", "stream"])
def test_a_template_that_raises_leaves_no_cycle_holding_the_request(
    folder: Path, interface: str, colour: str, how: str
) -> None:
    # NOTE: Jinja's rewritten traceback (frames of its own making, which hold the error) made
    # a cycle with the error: each 500 (or page cut off, streamed) kept its request and the
    # template's variables until a full collection.
    (folder / "broken.html").write_text(
        '{% extends "base.html" %}{% block body %}{{ request.path }} {{ 1 / 0 }}{% endblock %}'
    )
    app = App()
    answer = getattr(Templates(folder), how)
    app.get("/")(in_colour(colour, lambda request: answer(request, "broken.html")))
    assert requests_left_in_cycles(app, interface, "GET", "/") == 0


def _flashing(colour: str, page: Callable[..., Response]) -> App:
    """An app with sessions, whose ``POST /flash/{tag}`` flashes ``tag``, and ``page`` at
    ``GET /{name}``, in ``colour``."""
    app = App()
    app.install(Sessions("a-test-secret-of-32-characters!!", secure=False))

    @app.post("/flash/{tag}")
    def flash_it(request: Request, tag: str) -> str:
        flash(request, tag)
        return "ok"

    app.get("/{name}")(in_colour(colour, page))
    return app


def _streaming(templates: Templates, colour: str, name: str = "page.html") -> App:
    app = App()

    def page(request: Request) -> Response:
        context = {"title": "Notes", "message": request.query.get("m", "")}
        return templates.stream(request, name, context, headers={"x-page": "1"})

    app.get("/page")(in_colour(colour, page))

    @app.get("/notes/{note_id:int}", name="note")
    def note(request: Request, note_id: int) -> str:
        return str(note_id)

    return app


def test_stream_sends_what_render_does(folder: Path, make_client: MakeClient, colour: str) -> None:
    def user(request: Request) -> dict[str, str]:
        return {"title": "from the processor, under the context"}

    templates = Templates(folder, context_processors=[user])
    client = make_client(_streaming(templates, colour))
    response = client.get("/page", params={"m": "<hi>"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["x-page"] == "1"
    assert "content-length" not in response.headers  # NOTE: sent as it is rendered.
    assert response.text == (
        '<title>Notes</title><p>&lt;hi&gt;</p><a href="/notes/7">GET /page</a>'
    )


def test_stream_takes_a_template_object_as_render_does(
    folder: Path, make_client: MakeClient, colour: str
) -> None:
    # NOTE: render() took one (as Jinja's get_template does); stream() failed with
    # "'Template' object has no attribute 'split'" (review156).
    (folder / "flashes.html").write_text(
        "{% for m in get_flashed_messages() %}!{{ m }}{% endfor %}."
    )
    templates = Templates(folder)

    def streamed(request: Request, name: str) -> Response:
        return templates.stream(request, templates.env.get_template("flashes.html"))

    client = make_client(_flashing(colour, streamed))
    client.post("/flash/a")
    assert client.get("/streamed").text == "!a."
    assert client.get("/streamed").text == "."  # NOTE: shown, so taken from the session.


def test_stream_sends_a_long_page_in_pieces(
    folder: Path, make_client: MakeClient, colour: str
) -> None:
    (folder / "long.html").write_text("{% for i in range(3000) %}<li>{{ i }}</li>{% endfor %}")
    client = make_client(_streaming(Templates(folder), colour, "long.html"))
    with client.stream("GET", "/page") as response:
        pieces = [piece for piece in response.iter_raw() if piece]
    page = "".join(f"<li>{i}</li>" for i in range(3000))
    assert b"".join(pieces).decode() == page
    # NOTE: 9,000 values and tags from Jinja, sent in pieces of about STREAM_PIECE characters.
    assert 2 <= len(pieces) <= len(page) // 8192 + 2


def test_a_streamed_template_runs_off_the_event_loop_from_both_colours(
    folder: Path, colour: str
) -> None:
    # NOTE: docs/templates.md said it ran as "a stream of the handler's colour": an async def
    # handler's too runs in the pool under ASGI (a sync stream), as render() there does not.
    (folder / "where.html").write_text("{{ on_a_loop() }}")
    templates = Templates(folder)

    def on_a_loop() -> bool:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return False
        return True

    templates.env.globals["on_a_loop"] = on_a_loop
    app = _streaming(templates, colour, "where.html")
    with TestClient(app, interface="asgi") as client:
        assert client.get("/page").text == "False"


def test_stream_finds_the_template_and_runs_the_processors_in_the_handler(
    folder: Path, make_client: MakeClient, colour: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="microweb")
    client = make_client(_streaming(Templates(folder), colour, "nope.html"))
    assert client.get("/page").status_code == 500  # NOTE: not a 200 cut off.
    errors = [r.exc_info[1] for r in caplog.records if r.exc_info]
    assert any(isinstance(e, jinja2.TemplateNotFound) for e in errors)


@pytest.mark.parametrize("given", ["context", "processor"])
@pytest.mark.parametrize("how", ["render", "stream"])
def test_a_variable_name_that_is_not_a_string_is_a_500_in_the_handler(
    folder: Path, make_client: MakeClient, colour: str, how: str, given: str
) -> None:
    # NOTE: Jinja found it only as the page began, with "keywords must be strings", which
    # named no variable: a streamed page was then a 200 cut off after its headers.
    context: dict[Any, Any] = {1: "one", "title": "T"} if given == "context" else {}
    processors = [lambda request: {1: "one"}] if given == "processor" else []
    templates = Templates(folder, context_processors=processors)
    app = App()

    def page(request: Request) -> Response:
        try:
            return getattr(templates, how)(request, "page.html", context)  # type: ignore[no-any-return]
        except TypeError as exc:
            return Response.text(str(exc), status=500)

    app.get("/page")(in_colour(colour, page))
    app.get("/notes/{note_id:int}", name="note")(lambda request, note_id: "")
    answer = make_client(app).get("/page")
    assert answer.status_code == 500
    assert "template variable names must be strings" in answer.text
    assert "1" in answer.text


def test_a_streamed_template_that_raises_is_cut_off_and_logged(
    folder: Path, make_client: MakeClient, colour: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="microweb")
    (folder / "broken.html").write_text("{{ 'x' * 9000 }}{{ 1 / 0 }}")
    client = make_client(_streaming(Templates(folder), colour, "broken.html"))
    with client.stream("GET", "/page") as response:
        assert response.status_code == 200  # NOTE: sent before the template failed.
        pieces = []
        with pytest.raises(ZeroDivisionError):  # NOTE: the test client raises the app's error.
            for piece in response.iter_raw():
                pieces.append(piece)
    assert b"".join(pieces) == b"x" * 9000
    errors = [r.exc_info[1] for r in caplog.records if r.exc_info]
    assert any(isinstance(e, ZeroDivisionError) for e in errors)


@pytest.mark.parametrize(
    "page",
    [
        "{% for m in get_flashed_messages() %}!{{ m }}{% endfor %}",
        '{% extends "base.html" %}{% block body %}{% include "flashes.html" %}{% endblock %}',
        '{% from "shown.html" import shown %}{{ shown() }}',
    ],
)
def test_a_streamed_page_takes_the_flashes_it_shows_from_the_session(
    folder: Path, make_client: MakeClient, colour: str, page: str
) -> None:
    # NOTE: the cookie is sent before the template runs: read while it ran, the messages were
    # shown on every later page, never taken from the session.
    (folder / "flashes.html").write_text(
        "{% for m in get_flashed_messages() %}!{{ m }}{% endfor %}"
    )
    (folder / "shown.html").write_text(
        "{% macro shown() %}{% for m in get_flashed_messages() %}!{{ m }}{% endfor %}{% endmacro %}"
    )
    (folder / "streamed.html").write_text(page)
    (folder / "quiet.html").write_text('{% extends "base.html" %}{% block body %}-{% endblock %}')
    templates = Templates(folder)

    def streamed(request: Request, name: str) -> Response:
        return templates.stream(request, name)

    client = make_client(_flashing(colour, streamed))
    client.post("/flash/a")
    assert client.get("/quiet.html").text.endswith("-")  # NOTE: not shown, so not taken.
    assert client.get("/streamed.html").text.endswith("!a")
    assert "!" not in client.get("/streamed.html").text


def test_a_streamed_template_made_from_a_string_takes_the_flashes(
    folder: Path, make_client: MakeClient, colour: str
) -> None:
    # NOTE: a template made from a string has no file to look into: it was taken for one that
    # shows no messages, and the one it showed stayed in the session, shown on every page.
    templates = Templates(folder)
    page = templates.env.from_string("{% for m in get_flashed_messages() %}!{{ m }}{% endfor %}")
    client = make_client(_flashing(colour, lambda request, name: templates.stream(request, page)))
    client.post("/flash/a")
    assert client.get("/page").text == "!a"
    assert client.get("/page").text == ""


def test_the_logged_error_of_a_template_still_names_its_lines(
    folder: Path, make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    (folder / "broken.html").write_text(
        '{% extends "base.html" %}{% block body %}\n{{ 1 / 0 }}{% endblock %}'
    )
    caplog.set_level(logging.ERROR, logger="microweb")
    templates = Templates(folder)
    app = App()
    app.get("/")(lambda request: templates.render(request, "broken.html"))
    assert make_client(app).get("/").status_code == 500
    [error] = [r.exc_info[1] for r in caplog.records if r.exc_info]
    lines = "".join(traceback.format_exception(error))
    assert f"{folder / 'broken.html'}\", line 2, in block 'body'" in lines
    assert "{{ 1 / 0 }}" in lines and "ZeroDivisionError" in lines


def test_templates_are_compiled_when_made(folder: Path) -> None:
    (folder / "broken.html").write_text("{% if %}")
    with pytest.raises(jinja2.TemplateSyntaxError):
        Templates(folder)


def _loud_pages(folder: Path) -> None:
    """A base layout that uses a filter, and a page that uses a test, neither of them Jinja's."""
    (folder / "loud_base.html").write_text(
        "<h1>{{ title|shout }}</h1>{% block body %}{% endblock %}"
    )
    (folder / "loud.html").write_text(
        '{% extends "loud_base.html" %}{% block body %}{{ title is quiet }}{% endblock %}'
    )


def _rendering(templates: Templates, colour: str) -> App:
    app = App()

    def loud(request: Request) -> Response:
        return templates.render(request, "loud.html", {"title": request.query["title"]})

    app.get("/loud")(in_colour(colour, loud))
    return app


def test_filters_and_tests_added_to_env_after_templates_is_made(
    folder: Path, make_client: MakeClient, colour: str
) -> None:
    # NOTE: Templates compiled every template when made, before the app could add its filters:
    # a template that used one stopped the app with "No filter named 'shout'".
    _loud_pages(folder)
    templates = Templates(folder)
    templates.env.filters["shout"] = str.upper
    templates.env.tests["quiet"] = str.islower
    client = make_client(_rendering(templates, colour))
    assert client.get("/loud", params={"title": "hi"}).text == "<h1>HI</h1>True"
    assert client.get("/loud", params={"title": "Hi"}).text == "<h1>HI</h1>False"


def test_a_template_with_a_filter_of_the_apps_renders_the_text_read_when_made(
    folder: Path, make_client: MakeClient, colour: str
) -> None:
    # NOTE: compiled at its first render, it was read from disk again then, on the event loop
    # in an async def handler: a release unpacked over the folder since the start made that
    # one page a 500 (gone) or the new version among old ones (changed).
    _loud_pages(folder)
    templates = Templates(folder)
    templates.env.filters["shout"] = str.upper
    templates.env.tests["quiet"] = str.islower
    (folder / "loud_base.html").write_text("new {{ title|shout }}{% block body %}{% endblock %}")
    (folder / "loud.html").unlink()
    client = make_client(_rendering(templates, colour))
    assert client.get("/loud", params={"title": "hi"}).text == "<h1>HI</h1>True"


def test_a_filter_never_added_is_a_logged_500_at_render(
    folder: Path, make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="microweb")
    _loud_pages(folder)
    templates = Templates(folder)
    templates.env.tests["quiet"] = str.islower
    assert make_client(_rendering(templates, "sync")).get("/loud?title=hi").status_code == 500
    errors = [r.exc_info[1] for r in caplog.records if r.exc_info]
    assert [str(e) for e in errors] == ["No filter named 'shout'."]
    assert isinstance(errors[0], jinja2.TemplateAssertionError)


def test_other_compile_errors_still_stop_the_app_when_made(folder: Path) -> None:
    (folder / "twice.html").write_text("{% block a %}{% endblock %}{% block a %}{% endblock %}")
    with pytest.raises(jinja2.TemplateAssertionError, match="block 'a' defined twice"):
        Templates(folder)


@pytest.mark.parametrize(
    ("source", "error"),
    [
        ("{% block a %}{% endblock %}{% block a %}{% endblock %}", "block 'a' defined twice"),
        ("{% for x in y %}{% set loop = 1 %}{% endfor %}", "special loop variable"),
        ("{% macro m(a, a) %}{% endmacro %}", "duplicate argument"),
    ],
)
def test_a_template_with_a_filter_of_the_apps_still_stops_the_app_for_other_errors(
    folder: Path, source: str, error: str
) -> None:
    # NOTE: the filter's error came first, so the template was left for its first render,
    # and the other error with it: the app started, and the page was a 500.
    (folder / "page.html").write_text("{{ title|shout }}{{ title is quiet }}" + source)
    with pytest.raises((jinja2.TemplateSyntaxError, SyntaxError), match=error):
        Templates(folder)


def test_a_file_that_is_not_utf8_text_is_named_when_made(folder: Path) -> None:
    (folder / "img").mkdir()
    (folder / "img" / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    with pytest.raises(ValueError, match=r"'img/logo.png' in .* is not UTF-8 text") as caught:
        Templates(folder)
    assert isinstance(caught.value.__cause__, UnicodeDecodeError)


def test_a_broken_link_in_the_folder_is_named_when_made(folder: Path) -> None:
    # NOTE: Jinja lists it, then finds no file: "'gone.html' not found in search path" sent
    # one looking for a file the folder shows.
    (folder / "gone.html").symlink_to(folder / "nowhere.html")
    with pytest.raises(ValueError, match=r"'gone.html' in .* is listed but can't be read"):
        Templates(folder)


def test_render_reads_no_file(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    templates = Templates(folder)

    def no_io(*args: object, **kwargs: object) -> None:
        raise AssertionError("render touched the file system")

    monkeypatch.setattr(templates.env.loader, "get_source", no_io)
    monkeypatch.setattr(os.path, "getmtime", no_io)
    app = _app(templates, "async")
    with TestClient(app, interface="both") as client:
        assert client.get("/page").status_code == 200


def test_stream_reads_no_file(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # NOTE: its first call for a page read the page and the base it extends again, on the
    # event loop in an async def handler, to see whether they show flashed messages.
    (folder / "flashes.html").write_text(
        '{% extends "base.html" %}{% block body %}{{ get_flashed_messages() }}{% endblock %}'
    )
    templates = Templates(folder)

    def no_io(*args: object, **kwargs: object) -> None:
        raise AssertionError("stream touched the file system")

    monkeypatch.setattr(templates.env.loader, "get_source", no_io)
    monkeypatch.setattr(os.path, "getmtime", no_io)
    app = App()

    @app.get("/{name}")
    async def page(request: Request, name: str) -> Response:
        return templates.stream(request, name, {"title": "Notes", "message": "hi"})

    @app.get("/notes/{note_id:int}", name="note")
    def note(request: Request, note_id: int) -> str:
        return str(note_id)

    app.install(Sessions(secret="s" * 32))
    with TestClient(app, interface="both") as client:
        assert "<p>hi</p>" in client.get("/page.html").text
        assert client.get("/flashes.html").text == "<title></title>[]"


NAMES_NOT_COMPILED = [
    "/page.html",  # NOTE: Jinja reads "page.html" again for each spelling, and caches it anew.
    "./page.html",
    "notes//item.txt",
    ".secret.html",  # NOTE: hidden files are not compiled up front: never served either.
    ".git/config",
    "added.html",  # NOTE: a file added after Templates() was made.
    "../base.html",
    "page.html\x00",
]


def _with_hidden_and_late_files(folder: Path) -> tuple[Templates, int]:
    """Hidden files in ``folder``, ``Templates`` of it, then a file added; and its cache size."""
    (folder / ".secret.html").write_text("the secret")
    (folder / ".git").mkdir()
    (folder / ".git" / "config").write_text("[remote]")
    templates = Templates(folder)
    (folder / "added.html").write_text("added later")
    return templates, len(templates.env.cache)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", NAMES_NOT_COMPILED)
def test_render_serves_only_the_templates_compiled_up_front(
    folder: Path, make_client: MakeClient, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    # NOTE: a name built from the client's input reached the disk, on the event loop, and each
    # new spelling of one template stayed cached for good (cache_size=-1).
    templates, cached = _with_hidden_and_late_files(folder)

    def no_io(*args: object, **kwargs: object) -> None:
        raise AssertionError("render touched the file system")

    monkeypatch.setattr(templates.env.loader, "get_source", no_io)
    app = App()

    @app.get("/")
    def page(request: Request) -> Response:
        try:
            return templates.render(request, request.query["name"])
        except jinja2.TemplateNotFound:
            return Response.text("no such page", status=404)

    response = make_client(app).get("/", params={"name": name})
    assert (response.status_code, response.text) == (404, "no such page")
    assert len(templates.env.cache) == cached  # type: ignore[arg-type]


@pytest.mark.parametrize("name", NAMES_NOT_COMPILED)
def test_an_include_finds_only_the_templates_compiled_up_front(
    folder: Path, make_client: MakeClient, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    # NOTE: render() refused these names, but an include (or extends, import) of a name made at
    # render time still read the disk, served hidden files, and cached each spelling for good.
    (folder / "shows.html").write_text("[{% include name %}]")
    templates, cached = _with_hidden_and_late_files(folder)
    loader = templates.env.loader
    assert isinstance(loader, jinja2.FileSystemLoader)
    read = loader.get_source
    reads: list[str] = []

    def counted(environment: jinja2.Environment, template: str) -> object:
        reads.append(template)
        return read(environment, template)

    monkeypatch.setattr(loader, "get_source", counted)
    app = App()

    @app.get("/")
    def page(request: Request) -> Response:
        try:
            return templates.render(request, "shows.html", {"name": request.query["name"]})
        except jinja2.TemplateNotFound as exc:
            return Response.text(f"no {exc.name}", status=404)

    response = make_client(app).get("/", params={"name": name})
    assert (response.status_code, response.text) == (404, f"no {name}")
    assert (reads, len(templates.env.cache)) == ([], cached)  # type: ignore[arg-type]
    # NOTE: the names compiled up front are included as before.
    assert make_client(app).get("/", params={"name": "notes/item.txt"}).text == "[]"


def test_auto_reload_also_finds_files_added_later(folder: Path, make_client: MakeClient) -> None:
    templates = Templates(folder, auto_reload=True)
    (folder / "added.html").write_text("added {{ request.path }}")
    (folder / ".secret.html").write_text("the secret")
    app = App()

    @app.get("/{name}")
    def page(request: Request, name: str) -> Response:
        return templates.render(request, name)

    client = make_client(app)
    assert client.get("/added.html").text == "added /added.html"
    assert client.get("/.secret.html").status_code == 500


def test_auto_reload_picks_up_edited_files(folder: Path) -> None:
    templates = Templates(folder, auto_reload=True)
    item = folder / "notes" / "item.txt"
    assert templates.env.get_template("notes/item.txt").render(text="a") == "a"
    item.write_text("[{{ text }}]")
    stat = item.stat()
    os.utime(item, (stat.st_atime, stat.st_mtime + 10))
    assert templates.env.get_template("notes/item.txt").render(text="a") == "[a]"


def test_hidden_files_are_not_compiled(folder: Path) -> None:
    (folder / ".page.html.swp").write_bytes(b"\xff\xfe{% if %}")
    (folder / ".git").mkdir()
    (folder / ".git" / "HEAD").write_text("{% if %}")
    Templates(folder)


def test_several_directories(folder: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    other = tmp_path_factory.mktemp("other")
    (other / "extra.html").write_text("extra {{ x }}")
    templates = Templates([folder, other])
    assert templates.env.get_template("extra.html").render(x=1) == "extra 1"


def test_a_bytes_folder_is_taken_as_its_path(folder: Path) -> None:
    # NOTE: a bytes folder was iterated as a list of ints (a TypeError about an int); a bytes
    # path-like one failed in Jinja's loader, joined with str names.
    class BytesPath:
        def __fspath__(self) -> bytes:
            return bytes(folder)

    for directory in (bytes(folder), BytesPath(), [bytes(folder)]):
        templates = Templates(directory)
        assert templates.env.get_template("notes/item.txt").render(text="<b>") == "&lt;b&gt;"
    with pytest.raises(FileNotFoundError, match="nowhere' does not exist"):
        Templates(bytes(folder / "nowhere"))


def test_a_missing_directory_fails_at_once(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nowhere"):
        Templates(tmp_path / "nowhere")


def test_an_empty_list_of_folders_is_refused() -> None:
    # NOTE: accepted, every render was a TemplateNotFound.
    with pytest.raises(ValueError, match="needs a template folder"):
        Templates([])


def test_a_file_given_as_the_directory_is_said_to_be_a_file(tmp_path: Path) -> None:
    (tmp_path / "page.html").write_text("<p>hi</p>")
    with pytest.raises(FileNotFoundError, match=r"page\.html' is a file, not a folder"):
        Templates(tmp_path / "page.html")


def test_a_loader_of_ones_own_is_refused_clearly(folder: Path) -> None:
    with pytest.raises(TypeError, match="makes its loader from directory"):
        Templates(folder, loader=jinja2.DictLoader({"a.html": "a"}))


def test_enable_async_is_refused(folder: Path) -> None:
    with pytest.raises(ValueError, match="enable_async"):
        Templates(folder, enable_async=True)


@pytest.mark.parametrize("size", [0, 1, 400])
def test_a_cache_that_would_let_render_read_files_is_refused(folder: Path, size: int) -> None:
    # NOTE: a template pushed out of the cache was read from disk at render time (review156).
    with pytest.raises(ValueError, match="cache_size"):
        Templates(folder, cache_size=size)
    assert Templates(folder, cache_size=-1).env.cache is not None


def test_microweb_does_not_import_jinja() -> None:
    code = "import sys, microweb, microweb.testing; assert 'jinja2' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_without_jinja_the_error_names_the_extra() -> None:
    code = (
        "import sys; sys.modules['jinja2'] = None\n"
        "try:\n    import microweb.templating\n"
        "except ImportError as exc:\n    print(exc)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    # NOTE: not `pip install 'microweb[jinja]'`: PyPI's `microweb` is another project.
    assert "pip install jinja2 (microweb's 'jinja' extra)" in done.stdout


@pytest.mark.parametrize(
    ("source", "verb", "missing"),
    [
        ('{% extends "bse.html" %}', "extends", "bse.html"),
        ('<p>\n{% include "partial.html" %}</p>', "includes", "partial.html"),
        ('{% block b %}{% include "notes/item.html" %}{% endblock %}', "includes",
         "notes/item.html"),
        ('{% filter upper %}{% with a = 1 %}{% include "x.html" %}{% endwith %}{% endfilter %}',
         "includes", "x.html"),
        ('{% import "macros.html" as m %}', "imports", "macros.html"),
        ('{% from "macros.html" import nav %}', "imports", "macros.html"),
        ('{% include ".hidden.html" %}', "includes", ".hidden.html"),
    ],
    ids=["extends", "include", "include-in-block", "include-in-filter-and-with", "import",
         "from-import", "hidden"],
)  # fmt: skip
def test_a_literal_name_of_no_template_stops_the_app_at_startup(
    folder: Path, source: str, verb: str, missing: str
) -> None:
    # NOTE: a misspelled {% extends %} or {% include %} was found at the first render only (as
    # in Flask): a 500, and stream() a 200 cut off. The name can never be found (every
    # template is compiled up front), so Templates() says so, with the page and its line.
    (folder / ".hidden.html").write_text("hidden")
    (folder / "broken.html").write_text(source)
    line = 2 if source.startswith("<p>\n") else 1
    with pytest.raises(ValueError, match=r"broken\.html") as raised:
        Templates(folder)
    assert f"'broken.html' (line {line}) {verb} '{missing}'" in str(raised.value)


@pytest.mark.parametrize(
    "wrapper",
    [
        ("{% if shown %}", "{% endif %}"),
        ("{% for i in [] %}", "{% endfor %}"),
        ("{% macro m() %}", "{% endmacro %}"),
        ("{% if a %}{% for i in b %}", "{% endfor %}{% endif %}"),
    ],
    ids=["if", "for", "macro", "for-in-if"],
)
def test_a_child_templates_block_in_a_branch_runs_on_every_render(
    folder: Path, wrapper: tuple[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    # NOTE: Jinja takes every {% block %} of a template that extends another as its override,
    # wherever the tag stands: the base renders it, whether the branch around it is taken or
    # not. Its missing include failed every render, and startup only warned of a branch.
    opening, closing = wrapper
    (folder / "child.html").write_text(
        f'{{% extends "base.html" %}}{opening}{{% block body %}}'
        f'{{% include "partial.html" %}}{{% endblock %}}{closing}'
    )
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(folder))
    with pytest.raises(jinja2.TemplateNotFound):
        env.get_template("child.html").render(shown=False, a=False, b=[])
    with pytest.raises(ValueError, match=r"'child\.html' \(line 1\) includes 'partial\.html'"):
        Templates(folder)


@pytest.mark.parametrize(
    "source",
    [
        '{% include "nope.html" ignore missing %}',
        '{% include ["nope.html", "base.html"] %}',
        "{% include name %}",
        '{% extends "base.html" %}{% block body %}{% include "notes/item.txt" %}{% endblock %}',
        '{% raw %}{% include "nope.html" %}{% endraw %}{# {% include "nope.html" %} #}',
    ],
    ids=["ignore-missing", "list", "variable", "found", "raw-and-comment"],
)
def test_names_that_may_be_found_pass_the_startup_check(folder: Path, source: str) -> None:
    (folder / "fine.html").write_text(source)
    Templates(folder)


@pytest.mark.parametrize(
    ("source", "verb", "missing"),
    [
        ('{% if shown %}{% include "optional.html" %}{% endif %}', "includes", "optional.html"),
        ('{% if x %}{% elif shown %}{% include "optional.html" %}{% endif %}', "includes",
         "optional.html"),
        ('{% if not shown %}{% else %}{% include "optional.html" %}{% endif %}', "includes",
         "optional.html"),
        ('{% for i in [1] if shown %}{% include "optional.html" %}{% endfor %}', "includes",
         "optional.html"),
        ('{% macro m() %}{% include "optional.html" %}{% endmacro %}{% if shown %}{{ m() }}'
         '{% endif %}', "includes", "optional.html"),
        ('{% if shown %}{% import "optional.html" as o %}{% endif %}', "imports",
         "optional.html"),
        ('{% if shown %}{% extends "optional.html" %}{% endif %}', "extends", "optional.html"),
    ],
    ids=["if", "elif", "else", "for", "macro", "import", "extends"],
)  # fmt: skip
def test_a_literal_name_of_no_template_in_a_branch_is_a_warning_at_startup(
    folder: Path, source: str, verb: str, missing: str, caplog: pytest.LogCaptureFixture
) -> None:
    # NOTE: it stopped the app, where Jinja renders the page while the branch is not taken:
    # an optional part, a theme's override, a debug panel. Said at startup, still.
    caplog.set_level(logging.WARNING, logger="microweb")
    (folder / "branch.html").write_text(f"<p>\n{source}")
    templates = Templates(folder)
    warned = [r.getMessage() for r in caplog.records if r.name == "microweb"]
    assert len(warned) == 1
    assert f"'branch.html' (line 2) {verb} '{missing}'" in warned[0]
    assert ("ignore missing" in warned[0]) is (verb == "includes")
    page = templates.env.get_template("branch.html")
    assert page.render(shown=False) == "<p>\n"
    with pytest.raises(jinja2.TemplateNotFound, match=r"optional\.html"):
        page.render(shown=True)


def test_with_auto_reload_a_name_of_no_template_yet_waits_for_render(folder: Path) -> None:
    # NOTE: a file may be added while the app runs, and is found then.
    (folder / "later.html").write_text('{% extends "base2.html" %}')
    templates = Templates(folder, auto_reload=True)
    (folder / "base2.html").write_text("base2")
    assert templates.env.get_template("later.html").render() == "base2"
    (folder / "hidden.html").write_text('{% include ".secret.html" %}')
    with pytest.raises(ValueError, match=r"'\.secret\.html', which is not in"):
        Templates(folder, auto_reload=True)
