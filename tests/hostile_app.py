"""The app that ``test_servers_hostile.py`` runs under real Waitress and Uvicorn processes.

Each endpoint hands a client-chosen value to something that once passed a check and then broke
one server and not the other: a header value, a redirect target, a cookie, a body charset, the
request's URL, a multipart body read in each colour.
"""

from __future__ import annotations

import asyncio

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


@app.get("/")
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


@app.post("/slow")
async def slow(request: Request) -> str:
    # NOTE: answers a while after the body has come, for what the client sends meanwhile.
    text = await request.atext()
    await asyncio.sleep(0.5)
    return text


@app.post("/form")
def form(request: Request) -> dict[str, str]:
    return {name: str(value) for name, value in request.form().items()}


@app.post("/aform")
async def aform(request: Request) -> dict[str, str]:
    return {name: str(value) for name, value in (await request.aform()).items()}


@app.post("/parts")
def parts(request: Request) -> list[str]:
    return [part.name for part in request.iter_parts()]


@app.post("/aparts")
async def aparts(request: Request) -> list[str]:
    return [part.name async for part in request.aiter_parts()]


@app.post("/slowread")
async def slow_read(request: Request) -> str:
    # NOTE: reads its body a piece at a time, slower than the client sends it.
    body = b""
    async for chunk in request.aiter_bytes():
        body += chunk
        await asyncio.sleep(0.2)
    return body.decode()
