"""An app that sets the ``Set-Cookie`` lines a test gives and shows the ``Cookie`` line it gets:
the test client's jar seen from the app (test_testing_cookies.py, test_testing_browser.py)."""

from __future__ import annotations

from microweb import App, Request, Response


def line_app() -> App:
    """``/set`` answers with each ``line`` query value as a ``Set-Cookie`` line, ``/move``
    too, with a 303 to ``/line``, which answers the request's ``Cookie`` line (or ``none``)."""
    app = App()

    @app.get("/set")
    def set_line(request: Request) -> Response:
        response = Response.text("set")
        for line in request.query.getlist("line"):
            response.headers.add("set-cookie", line)
        return response

    @app.get("/move")
    def move(request: Request) -> Response:
        response = Response.redirect("/line", status=303)
        for line in request.query.getlist("line"):
            response.headers.add("set-cookie", line)
        return response

    @app.get("/line")
    def cookie_line(request: Request) -> str:
        return request.headers.get("cookie", "none")

    return app
