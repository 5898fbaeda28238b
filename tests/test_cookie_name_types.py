"""A cookie name that is no ``str`` is a ``TypeError`` that says so, as a path's or domain's is."""

from __future__ import annotations

from typing import Any

import pytest

from microweb import Response


@pytest.mark.parametrize("key", [b"session", 5, None])
def test_a_cookie_name_that_is_no_str_is_named(key: Any) -> None:
    # NOTE: bytes met a str pattern ("cannot use a string pattern on a bytes-like object"),
    # and None or an int gave "expected string or bytes-like object", with no word of the name.
    with pytest.raises(TypeError, match="a cookie name is a str, not"):
        Response().set_cookie(key, "x")
    with pytest.raises(TypeError, match="a cookie name is a str, not"):
        Response().delete_cookie(key)
