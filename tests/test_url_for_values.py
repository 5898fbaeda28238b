"""``url_for`` builds only URLs that route back to the values it was given."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import MakeClient

from microweb import App, Request


def values_app() -> App:
    app = App()

    @app.get("/f/{value:float}", name="float")
    @app.get("/i/{value:int}", name="int")
    @app.get("/s/{value}", name="str")
    def echo(request: Request, value: Any) -> dict:
        return {"value": value}

    return app


@pytest.mark.parametrize(
    ("name", "value", "url"),
    [
        ("float", 1e20, "/f/100000000000000000000"),
        ("float", 1e-7, "/f/0.0000001"),
        ("float", 2.5, "/f/2.5"),
        ("int", 7, "/i/7"),
    ],
)
def test_url_for_a_number_routes_back_to_it(
    make_client: MakeClient, name: str, value: float, url: str
) -> None:
    app = values_app()
    assert app.url_for(name, value=value) == url
    assert make_client(app).get(url).json() == {"value": value}


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("int", -3),
        ("float", -1.5),
        ("float", float("inf")),
        ("float", float("nan")),
    ],
)
def test_url_for_refuses_a_value_no_request_can_match(name: str, value: object) -> None:
    # NOTE: "/i/-3" would answer 404: {value:int} takes no sign.
    with pytest.raises(ValueError, match="'value'"):
        values_app().url_for(name, value=value)
