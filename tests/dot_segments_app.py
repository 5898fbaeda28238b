"""An app whose custom converter takes dot segments, behind a ``{name}`` parameter, for
``test_servers_dot_segments``."""

from __future__ import annotations

from microweb import App, Request


def _dots(text: str) -> str:
    if text not in (".", ".."):
        raise ValueError(text)
    return text


app = App()
app.add_converter("dots", _dots)


@app.get("/u/{name}")
def by_name(request: Request, name: str) -> str:
    return f"name {name}"


@app.get("/u/{dots:dots}")
def by_dots(request: Request, dots: str) -> str:
    return f"dots {dots}"
