"""The root path an app is mounted at, taken out of the request's path the same way under WSGI
and ASGI: in-process, and from the environ or scope each kind of server gives."""

from __future__ import annotations

import asyncio
import json
import random
import re
import tracemalloc
from typing import Any
from urllib.parse import unquote_to_bytes

import pytest
from conftest import in_colour
from drive import asgi_get, wsgi_get

from microweb import App, Request
from microweb._target import leading_slashes, strip_root
from microweb.testing import TestClient

# NOTE: (path sent, (path, raw_path) the app sees; None: 404). The root is compared as the path
# is routed, decoded ("%2F" is "/", as a server's decoded PATH_INFO has it), and the path left
# below it has its leading slashes collapsed into one, as a path without a root has them.
CASES = [
    ("/app/where", ("/where", "/where")),
    ("/app", ("/", "/")),
    ("/app/", ("/", "/")),
    ("/app//where", ("/where", "/where")),
    ("/app///where", ("/where", "/where")),
    ("/app//", ("/", "/")),
    ("//app/where", ("/where", "/where")),
    ("/app%2Fwhere", ("/where", "/where")),
    ("/app%2fwhere", ("/where", "/where")),
    ("/app%2F%2Fwhere", ("/where", "/%2Fwhere")),
    ("/app/%2Fwhere", ("/where", "/%2Fwhere")),
    ("/%61pp/where", ("/where", "/where")),
    # NOTE: leading "%2F"s collapse as "/"s do, before the root is compared (review161).
    ("/%2Fapp/where", ("/where", "/where")),
    ("/%2f%2Fapp", ("/", "/")),
    ("//%2F/app%2Fwhere", ("/where", "/where")),
    ("/%2Fwhere", ("/where", "/%2Fwhere")),
    ("/%2Fappx/where", None),
    ("/where", ("/where", "/where")),
    ("/appx/where", None),
    ("/app%2Ex/where", None),
]


def _where_app(colour: str) -> App:
    app = App()

    def where(request: Request) -> dict[str, str]:
        return {
            "root": request.root_path,
            "path": request.path,
            "raw": request.raw_path.decode("ascii"),
        }

    app.get("/where")(in_colour(colour, where))
    app.get("/", name="home")(in_colour(colour, where))
    return app


def _expected(seen: tuple[str, str] | None) -> tuple[int, Any]:
    if seen is None:
        return 404, None
    return 200, {"root": "/app", "path": seen[0], "raw": seen[1]}


@pytest.mark.parametrize(("sent", "seen"), CASES, ids=[case[0] for case in CASES])
def test_the_root_path_is_taken_out_the_same_way_in_process(
    interface: str, colour: str, sent: str, seen: tuple[str, str] | None
) -> None:
    # NOTE: "/app//where" was "//where" under ASGI (a 404) and "/where" under WSGI;
    # "/app%2Fwhere" kept its root under ASGI, and under the WSGI test client.
    with TestClient(_where_app(colour), interface=interface, root_path="/app") as client:
        response = client.get(sent)
        status, body = _expected(seen)
        assert response.status_code == status, response.text
        if body is not None:
            assert response.json() == body


def _waitress_environ(sent: str) -> dict[str, str]:
    """What Waitress, with ``url_prefix="/app"``, puts in an environ for ``sent``: the path
    percent-decoded, its leading slashes collapsed, then the prefix taken out."""
    path = "/" + unquote_to_bytes(sent).decode("latin-1").lstrip("/")
    if path == "/app":
        path = ""
    elif path.startswith("/app/"):
        path = path[len("/app") :]
    return {"PATH_INFO": path, "SCRIPT_NAME": "/app", "RAW_URI": sent, "REQUEST_URI": sent}


@pytest.mark.parametrize(("sent", "seen"), CASES, ids=[case[0] for case in CASES])
def test_the_root_path_is_taken_out_the_same_way_from_an_environ_and_a_scope(
    sent: str, seen: tuple[str, str] | None
) -> None:
    app = _where_app("sync")
    wsgi = app.as_wsgi()
    try:
        environ = _waitress_environ(sent)
        line, wsgi_body = wsgi_get(wsgi, environ.pop("PATH_INFO"), **environ)
    finally:
        wsgi.close()
    asgi_status, asgi_body = asyncio.run(asgi_get(app.as_asgi(), sent, root_path="/app"))
    status, body = _expected(seen)
    assert (int(line[:3]), asgi_status) == (status, status), (wsgi_body, asgi_body)
    if body is not None:
        assert json.loads(wsgi_body) == json.loads(asgi_body) == body


# -- the leading slashes of a long path (hostile5) -------------------------------------------


def test_a_long_run_of_leading_slashes_and_escapes_takes_no_memory_per_slash() -> None:
    # NOTE: a regex's repeated group kept a backtracking point for each "/" or "%2F": a 256 KiB
    # target of "/%2F////..." took 38 MB while it was read (146 bytes a byte), in every request
    # to an app mounted at a root path, under ASGI, or reading raw_path under WSGI.
    for path in [b"/%2F" + b"/" * 262_144 + b"app/x", b"/" + b"%2F" * 87_382 + b"app/x"]:
        tracemalloc.start()
        try:
            rest = strip_root(path, b"/app")
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert rest == b"/x"
        assert peak < 3 * len(path)


def test_the_leading_slashes_collapse_as_the_regex_collapsed_them() -> None:
    # NOTE: the old reading, "(?:/|%2[Ff])+" matched at the start, on every short path of
    # these bytes: what follows the run of slashes and escapes is the same.
    old = re.compile(rb"(?:/|%2[Ff])+")
    pieces = [b"/", b"%", b"2", b"F", b"f", b"a", b"%2F", b"%2f"]
    chosen = random.Random(5)
    for _ in range(3_000):
        path = b"/" + b"".join(chosen.choice(pieces) for _ in range(chosen.randrange(8)))
        found = old.match(path)
        assert found is not None
        assert leading_slashes(path) == found.end(), path


def test_a_long_run_of_leading_slashes_is_taken_out_of_the_path(
    interface: str, colour: str
) -> None:
    with TestClient(_where_app(colour), interface=interface, root_path="/app") as client:
        response = client.get("/%2F" + "/" * 60_000 + "%2f%2Fapp/where")
        assert response.status_code == 200, response.text
        assert response.json() == {"root": "/app", "path": "/where", "raw": "/where"}
