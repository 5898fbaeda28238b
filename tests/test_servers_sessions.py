"""The ``Sessions`` plugin through real servers: its cookie and the app's own go out as
separate ``Set-Cookie`` lines under Waitress (WSGI) and Uvicorn (ASGI), and come back."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from servers import HOST, serving_plainly

pytestmark = pytest.mark.servers


@pytest.fixture(scope="module", params=["waitress", "uvicorn"])
def base_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    server = str(request.param)
    app, folder = "sessions_app:app", f"sessions-{server}"
    with serving_plainly(server, app, tmp_path_factory, folder) as (port, _):
        yield f"http://{HOST}:{port}"


def test_a_session_and_a_cookie_of_the_app_s_own_go_out_and_come_back(base_url: str) -> None:
    with httpx.Client(base_url=base_url, timeout=5.0) as client:
        login = client.post("/login/ann")
        lines = login.headers.get_list("set-cookie")
        assert sorted(line.split("=", 1)[0] for line in lines) == ["session", "theme"]
        assert client.get("/me").json() == {"user": "ann", "theme": "dark"}
        # NOTE: refresh_after=0: the one session cookie is signed again with each answer.
        assert client.get("/me").headers["set-cookie"].startswith("session=")
        logout = client.post("/logout")
        assert "Max-Age=0" in logout.headers["set-cookie"]
        assert client.get("/me").json() == {"user": None, "theme": "dark"}


def test_a_session_of_several_cookies_is_read_and_not_refreshed(base_url: str) -> None:
    with httpx.Client(base_url=base_url, timeout=5.0) as client:
        own = client.post("/login/ann").cookies["session"]
        other = client.post("/login/mallory").cookies["session"]
    headers = {"cookie": f"session={other}; session={own}"}
    looked = httpx.get(f"{base_url}/me", headers=headers, timeout=5.0)
    assert looked.json() == {"user": "mallory", "theme": None}
    assert "set-cookie" not in looked.headers
    assert looked.headers["vary"] == "Cookie"


def test_a_session_on_the_first_of_two_cookie_lines_is_read_and_kept(base_url: str) -> None:
    # NOTE: waitress-serve joins a client's Cookie lines with ", ": the session's value read
    # to the line's end failed its check, and the answer deleted the user's cookie.
    with httpx.Client(base_url=base_url, timeout=5.0) as client:
        own = client.post("/login/ann").cookies["session"]
    headers = [("cookie", f"session={own}"), ("cookie", "theme=dark")]
    looked = httpx.get(f"{base_url}/me", headers=headers, timeout=5.0)
    assert looked.json()["user"] == "ann"
    # NOTE: refresh_after=0: the one session cookie is signed again, not deleted.
    assert "Max-Age=0" not in looked.headers["set-cookie"]
