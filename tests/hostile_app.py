"""The app that ``test_servers_hostile.py`` runs under real Waitress and Uvicorn processes.

Each endpoint hands a client-chosen value to something that once passed a check and then broke
one server and not the other: a header value, a redirect target, a cookie, a body charset, the
request's URL.
"""

from __future__ import annotations

from microweb import App, Request, Response

app = App()


@app.get("/header")
def header(request: Request) -> Response:
    response = Response.text("set")
    response.headers["x-echo"] = request.query["v"]
    return response


@app.get("/redirect")
def redirect(request: Request) -> Response:
    return Response.redirect(request.query["to"])


@app.get("/url")
def url(request: Request) -> str:
    return request.url


@app.get("/cookie/set")
def set_cookie(request: Request) -> Response:
    response = Response.text("set")
    response.set_cookie("v", request.query["v"])
    return response


@app.get("/cookie/get")
def get_cookie(request: Request) -> dict[str, str]:
    return request.cookies


@app.post("/text")
async def text(request: Request) -> str:
    return await request.atext()
