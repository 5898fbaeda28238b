"""Each plugin page of docs/ gives its plugin's signature on one line: it must be the code's.

The line (``GZip(minimum_size=500, compresslevel=6, media_types=None)``) is read as a Python call:
bare names are the parameters without a default, ``name=value`` the ones with, ``*`` where the
keyword-only ones start. Names, order, kinds and defaults are compared with ``inspect``.
"""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path
from typing import Any

import pytest

from microweb import plugins

DOCS = Path(__file__).resolve().parent.parent / "docs"
PAGES = {
    "CORS": "plugins-cors.md",
    "CSRF": "plugins-csrf.md",
    "GZip": "plugins-gzip.md",
    "ProxyHeaders": "plugins-proxy.md",
    "RequestID": "plugins-requestid.md",
    "AccessLog": "plugins-requestid.md",
    "Static": "plugins-static.md",
    "TrustedHosts": "plugins-trustedhosts.md",
}
KEYWORD_ONLY = "__keyword_only__"


def documented(name: str) -> list[tuple[str, Any]]:
    """The parameters of the line that gives ``name``'s signature, as (name, default) pairs.

    A parameter without a default has ``inspect.Parameter.empty``; ``*`` is ``(KEYWORD_ONLY,
    None)``, and a default written as a name (a function's) is that name.
    """
    text = (DOCS / PAGES[name]).read_text()
    # NOTE: the signature is the one line (or two) in backticks that opens a paragraph.
    found = re.search(rf"^`({name}\((?:[^`]|\n)*?\))`$", text, re.MULTILINE)
    assert found is not None, f"no signature line for {name} in {PAGES[name]}"
    call = found[1].replace("\n", " ").replace(", *,", f", {KEYWORD_ONLY}=None,")
    node = ast.parse(call, mode="eval").body
    assert isinstance(node, ast.Call)
    pairs: list[tuple[str, Any]] = []
    for arg in node.args:
        assert isinstance(arg, ast.Name)
        pairs.append((arg.id, inspect.Parameter.empty))
    for keyword in node.keywords:
        value = keyword.value
        default = value.id if isinstance(value, ast.Name) else ast.literal_eval(value)
        assert keyword.arg is not None
        pairs.append((keyword.arg, default))
    return pairs


def in_code(name: str) -> list[tuple[str, Any]]:
    """The same pairs, from the class's ``__init__``; a function default is named."""
    pairs: list[tuple[str, Any]] = []
    for parameter in inspect.signature(getattr(plugins, name)).parameters.values():
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY and KEYWORD_ONLY not in dict(pairs):
            pairs.append((KEYWORD_ONLY, None))
        default = parameter.default
        pairs.append((parameter.name, default.__name__ if inspect.isfunction(default) else default))
    return pairs


@pytest.mark.parametrize("name", sorted(PAGES))
def test_plugin_page_gives_the_signature_of_the_code(name: str) -> None:
    assert documented(name) == in_code(name)
