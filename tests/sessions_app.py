"""An app with the ``Sessions`` plugin, for ``test_servers_sessions``: a login that sets the
session and a cookie of its own (two ``Set-Cookie`` lines), a page that reads it, a logout."""

from __future__ import annotations

from microweb import App, Request, Response
from microweb.plugins import Sessions

SECRET = "a-test-secret-of-32-characters!!"

app = App()
app.install(Sessions(SECRET, refresh_after=0))


@app.post("/login/{user}")
def login(request: Request, user: str) -> Response:
    request.session.clear()
    request.session["user"] = user
    response = Response.text("in")
    response.set_cookie("theme", "dark")
    return response


@app.get("/me")
async def me(request: Request) -> dict[str, object]:
    return {"user": request.session.get("user"), "theme": request.cookies.get("theme")}


@app.post("/logout")
async def logout(request: Request) -> None:
    request.session.clear()
