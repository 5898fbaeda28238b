"""The WebSocket app that ``test_websockets_sequences.py`` drives with random sequences of client
actions, in-process (the test client) and under a real Uvicorn process.

``/seq/{conn}`` reads messages in one of three modes, text first:

- text: ``"!mode:bytes"`` or ``"!mode:json"`` switches the mode (answer ``"ok"``);
  ``"!close:<code>"`` closes with that code; ``"!many:<n>:<size>"`` sends ``n`` messages of
  ``"m<i>:"`` and ``size`` x's, then ``"ok"``; ``"!end:<n>:<size>"`` sends them, then returns;
  any other text is echoed as ``"t:" + text``;
- bytes: ``b"!text"`` switches back to text (answer ``b"ok"``); other bytes are echoed as
  ``b"b:" + data``;
- json: the JSON string ``"!text"`` switches back to text (answer ``"ok"``); another value
  comes back as ``{"json": value}``.

A message of the wrong type (1003), invalid JSON (1007) or one over ``MAX_MESSAGE`` bytes
(1009) closes the connection, as ``receive_*()`` does. What the handler saw is kept under the
connection's name, and ``GET /seq-log/{conn}`` answers it: ``["closed", code]`` for its own
close, ``["returned"]`` for a return, ``["disconnect", code]`` for the ``WebSocketDisconnect``
that ended it, then ``["finally"]``.
"""

from __future__ import annotations

from microweb import App, Limits, Request, WebSocket, WebSocketDisconnect

MAX_MESSAGE = 256

app = App(limits=Limits(max_websocket_message=MAX_MESSAGE))
LOGS: dict[str, list[list[object]]] = {}


@app.websocket("/seq/{conn}")
async def seq(ws: WebSocket, conn: str) -> None:
    """Answer messages by mode (see the module's docstring), and log how the connection ends."""
    log = LOGS.setdefault(conn, [])
    await ws.accept()
    mode = "text"
    try:
        while True:
            if mode == "bytes":
                data = await ws.receive_bytes()
                if data == b"!text":
                    mode = "text"
                    await ws.send_bytes(b"ok")
                else:
                    await ws.send_bytes(b"b:" + data)
            elif mode == "json":
                value = await ws.receive_json()
                if value == "!text":
                    mode = "text"
                    await ws.send_json("ok")
                else:
                    await ws.send_json({"json": value})
            else:
                text = await ws.receive_text()
                if text.startswith("!mode:"):
                    mode = text[len("!mode:") :]
                    await ws.send_text("ok")
                elif text.startswith(("!many:", "!end:")):
                    command, count, size = text.split(":")
                    for index in range(int(count)):
                        await ws.send_text(f"m{index}:" + "x" * int(size))
                    if command == "!end":
                        log.append(["returned"])
                        return
                    await ws.send_text("ok")
                elif text.startswith("!close:"):
                    code = int(text[len("!close:") :])
                    await ws.close(code)
                    log.append(["closed", code])
                    return
                else:
                    await ws.send_text("t:" + text)
    except WebSocketDisconnect as exc:
        log.append(["disconnect", exc.code])
        raise
    finally:
        log.append(["finally"])


@app.get("/seq-log/{conn}")
def seq_log(request: Request, conn: str) -> list[list[object]]:
    """What the handler of connection ``conn`` saw (see the module's docstring)."""
    return LOGS.get(conn, [])
