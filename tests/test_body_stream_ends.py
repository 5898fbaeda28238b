"""A read after a stream of the body (``iter_bytes``/``aiter_bytes``) that read it to its end:
the client leaving afterwards is no error of that read (review169).

Only a stream cut short by the client's leaving leaves a ``ClientDisconnect`` for later reads
(see test_body_whole.py); one that ended whole leaves them what they gave before.
"""

from __future__ import annotations

import asyncio
import io
import time

from drive import asgi_call, body_messages, http_scope, wsgi_environ
from test_body import body_app

from microweb import App, Request


def stream_then_ask(request: Request) -> str:
    """Stream the whole body, wait to see the client gone, then read the body again."""
    chunks = list(request.iter_bytes())
    for _ in range(50):
        if request.is_disconnected():
            break
        time.sleep(0.01)
    seen = [f"{len(b''.join(chunks))} bytes", f"gone {request.is_disconnected()}"]
    try:
        seen.append(f"json {request.json(silent=True, force=True)!r}")
    except Exception as exc:
        seen.append(f"json {type(exc).__name__}")
    return ", ".join(seen)


async def astream_then_ask(request: Request) -> str:
    chunks = [chunk async for chunk in request.aiter_bytes()]
    for _ in range(50):
        if await request.ais_disconnected():
            break
        await asyncio.sleep(0.01)
    seen = [f"{len(b''.join(chunks))} bytes", f"gone {await request.ais_disconnected()}"]
    try:
        seen.append(f"json {await request.ajson(silent=True, force=True)!r}")
    except Exception as exc:
        seen.append(f"json {type(exc).__name__}")
    return ", ".join(seen)


def app_of(colour: str) -> App:
    return body_app(colour, stream_then_ask, astream_then_ask)


def test_a_client_gone_after_a_whole_stream_is_no_error_under_asgi(colour: str) -> None:
    # NOTE: json(silent=True) after a stream gives None; once the client was seen leaving
    # after the stream had read the whole body, it raised ClientDisconnect ("the client
    # disconnected while its body was read"), which it had not.
    messages = [*body_messages(b'{"a": ', b"1}"), {"type": "http.disconnect"}]
    sent = asyncio.run(asgi_call(app_of(colour), http_scope("POST", "/"), messages))
    assert sent[0]["status"] == 200
    assert sent[1]["body"] == b"8 bytes, gone True, json None"


def test_a_client_gone_after_a_whole_stream_is_no_error_under_wsgi(colour: str) -> None:
    # NOTE: Waitress tells the app the client left (waitress.client_disconnected).
    driver = app_of(colour).as_wsgi()
    try:
        environ = wsgi_environ("POST", "/", CONTENT_LENGTH="8")
        environ["wsgi.input"] = io.BytesIO(b'{"a": 1}')
        environ["waitress.client_disconnected"] = lambda: True
        answer = b"".join(driver(environ, lambda status, headers, exc_info=None: None))
    finally:
        driver.close()
    assert answer == b"8 bytes, gone True, json None"
