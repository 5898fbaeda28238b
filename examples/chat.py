"""A chat room over WebSockets: every message sent by one browser is shown in all of them.

``GET /`` is a page that asks for a name, connects to ``/ws?name=...`` and shows every message
the room receives. ``/ws`` is a WebSocket endpoint: each text message a client sends goes out to
every connected client (the sender too) as JSON ``{"name": ..., "text": ...}``. The set of
connections lives in ``app.state``; an async startup hook creates it together with the
``asyncio.Lock`` that guards it, so both belong to the server's event loop.

WebSockets need the ASGI entrypoint. Serve it from the repository root, then open
http://127.0.0.1:8000/ in two browser windows::

    microweb serve examples/chat.py
    uvicorn --factory examples.chat:app.as_asgi    # the same, with Uvicorn's own command

Or talk to it from a terminal with the ``websockets`` package:
``python -m websockets "ws://127.0.0.1:8000/ws?name=terminal"``.
"""

from __future__ import annotations

import asyncio
import contextlib

from microweb import App, Request, Response, WebSocket

app = App()

MAX_NAME_LENGTH = 32

PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>microweb chat</title>
  <style>
    body { font-family: sans-serif; max-width: 40rem; margin: 2rem auto; }
    #messages { list-style: none; padding: 0; min-height: 10rem; border: 1px solid #ccc; }
    #messages li { padding: 0.2rem 0.5rem; }
    #messages b { margin-right: 0.5rem; }
  </style>
</head>
<body>
  <h1>microweb chat</h1>
  <p>Status: <span id="status">not connected</span></p>
  <form id="join">
    <input id="name" placeholder="your name" autocomplete="off" maxlength="32">
    <button id="join-button" type="submit">Join</button>
  </form>
  <ul id="messages"></ul>
  <form id="chat">
    <input id="text" placeholder="say something" autocomplete="off" disabled>
    <button id="send" type="submit" disabled>Send</button>
  </form>
  <script>
    const statusLine = document.getElementById("status");
    const nameInput = document.getElementById("name");
    const textInput = document.getElementById("text");
    const sendButton = document.getElementById("send");
    const messages = document.getElementById("messages");
    let socket = null;

    function setConnected(connected, label) {
      statusLine.textContent = label;
      textInput.disabled = !connected;
      sendButton.disabled = !connected;
    }

    function show(message) {
      const item = document.createElement("li");
      const who = document.createElement("b");
      who.textContent = message.name;           // textContent: never parsed as HTML
      item.append(who, message.text);
      messages.append(item);
    }

    function join(name) {
      if (socket !== null) {
        socket.close();
      }
      const scheme = location.protocol === "https:" ? "wss:" : "ws:";
      const url = `${scheme}//${location.host}/ws?name=${encodeURIComponent(name)}`;
      socket = new WebSocket(url);
      setConnected(false, "connecting");
      socket.onopen = () => setConnected(true, "connected");
      socket.onclose = () => setConnected(false, "disconnected");
      socket.onmessage = (event) => show(JSON.parse(event.data));
    }

    document.getElementById("join").addEventListener("submit", (event) => {
      event.preventDefault();
      join(nameInput.value.trim() || "anonymous");
    });

    document.getElementById("chat").addEventListener("submit", (event) => {
      event.preventDefault();
      if (textInput.value && socket && socket.readyState === WebSocket.OPEN) {
        socket.send(textInput.value);
        textInput.value = "";
      }
    });

    const given = new URLSearchParams(location.search).get("name");
    if (given) {
      nameInput.value = given;
      join(given);
    }
  </script>
</body>
</html>
"""


@app.on_startup
async def open_room() -> None:
    """Create the room on the server's event loop: its connections and the lock guarding them."""
    app.state.clients = set()
    app.state.lock = asyncio.Lock()


@app.get("/")
def index(request: Request) -> Response:
    """Serve the chat page."""
    return Response.html(PAGE)


# Seconds a client gets to take one message. A send waits while the client's connection is
# full, and a broadcast waits for its slowest client: without a deadline, one browser that
# reads nothing (a laptop gone to sleep) would hold up the room for everyone.
SEND_DEADLINE = 5.0


async def _deliver(client: WebSocket, message: dict[str, str]) -> WebSocket | None:
    try:
        await asyncio.wait_for(client.send_json(message), SEND_DEADLINE)
    except Exception:
        # NOTE: a client that left between two messages, or is too slow to take them, must
        # not stop the others' delivery (wait_for's TimeoutError is an Exception too).
        return client
    return None


async def _dismiss(client: WebSocket) -> None:
    # NOTE: 1013, "try again later". A client too slow to take a message may be too slow to
    # take the close too: it gets the same deadline, then is left to the server's timeout.
    with contextlib.suppress(Exception):
        await asyncio.wait_for(client.close(1013), SEND_DEADLINE)


async def broadcast(message: dict[str, str]) -> None:
    """Send ``message`` to every connected client; close and forget those that cannot be
    reached in ``SEND_DEADLINE`` seconds.

    The lock makes every client see the messages in the same order.
    """
    async with app.state.lock:
        clients = list(app.state.clients)
        failed = await asyncio.gather(*(_deliver(client, message) for client in clients))
        gone = [client for client in failed if client is not None]
        app.state.clients.difference_update(gone)
    # NOTE: closed, so that their page says "disconnected": it said "connected" and showed no
    # more messages. Outside the lock, so that the room's other messages need not wait.
    await asyncio.gather(*(_dismiss(client) for client in gone))


@app.websocket("/ws")
async def chat(ws: WebSocket) -> None:
    """Join the room as ``?name=...`` and relay every text message to everybody."""
    name = (ws.request.query.get("name") or "").strip()[:MAX_NAME_LENGTH] or "anonymous"
    await ws.accept()
    async with app.state.lock:
        app.state.clients.add(ws)
    try:
        async for text in ws.iter_text():
            await broadcast({"name": name, "text": text})
            if ws.state == "closed":
                # NOTE: closed by its own message's broadcast, which it was too slow to take
                # (a script that sends and reads nothing): the next receive would raise.
                break
    finally:
        async with app.state.lock:
            app.state.clients.discard(ws)
