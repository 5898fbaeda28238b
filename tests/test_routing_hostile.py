"""Routing and redirects against hostile input: what a browser would make of a ``Location``
the app wrote, and how often a request runs a route's converters."""

from __future__ import annotations

import contextlib
import tracemalloc
from typing import Any

import pytest
from conftest import MakeClient
from hypothesis import given, settings
from hypothesis import strategies as st

from microweb import App, Request, Response
from microweb._route_table import RouteTable
from microweb._route_templates import BUILTIN_CONVERTERS, Converter, _to_path, parse_template
from microweb._routing import Route

# -- Location: the host the app wrote is the host the browser goes to ------------------------


@pytest.mark.parametrize(
    ("url", "location"),
    [
        # NOTE: to a browser (WHATWG URL), a "\" ends the host of an http(s) URL as "/" does:
        # the app's URL leads to good.example. Written "%5C", it no longer ends the host, and
        # "good.example%5C" became the userinfo of a URL that led to evil.example.
        ("http://good.example\\@evil.example/", "http://good.example/@evil.example/"),
        ("//good.example\\@evil.example/", "//good.example/@evil.example/"),
        ("HTTPS://good.example\\evil.example", "HTTPS://good.example/evil.example"),
        (
            "https://b\u00fccher.example\\@evil.example",
            "https://xn--bcher-kva.example/@evil.example",
        ),
        # NOTE: a browser skips any run of "/" and "\" before the host of a special URL.
        ("///good.example\\@evil.example/", "///good.example/@evil.example/"),
        ("http:///good.example\\@evil.example/", "http:///good.example/@evil.example/"),
        # NOTE: no host before it: still escaped, or "/\evil.example" would be "//evil.example".
        ("/\\evil.example", "/%5Cevil.example"),
        ("http://good.example/a\\b", "http://good.example/a%5Cb"),
        # NOTE: a scheme that is not special to browsers: "\" is no delimiter there.
        ("myapp://good\\@evil", "myapp://good%5C@evil"),
    ],
)
def test_a_redirect_keeps_the_host_a_browser_reads_before_a_backslash(
    make_client: MakeClient, url: str, location: str
) -> None:
    response = make_client(_redirecting(url)).get("/go")
    assert response.status_code == 307
    assert response.headers["location"] == location


@pytest.mark.parametrize(
    ("url", "location"),
    [
        # NOTE: after "http:", a browser reads the host at once (from a page of another
        # scheme). A "\" before the host stays escaped, and a browser reads no host there.
        # The test client's httpx cannot read such a Location at all: checked on the response.
        ("http:good.example\\@evil.example/", "http:good.example/@evil.example/"),
        ("http:\\\\good.example\\@evil.example", "http:%5C%5Cgood.example/@evil.example"),
        ("http:/\\good.example\\@evil.example", "http:/%5Cgood.example/@evil.example"),
        ("\\\\good.example\\@evil.example", "%5C%5Cgood.example/@evil.example"),
    ],
)
def test_a_redirect_ends_the_host_after_backslashes_before_it(url: str, location: str) -> None:
    assert Response.redirect(url).headers["location"] == location


@pytest.mark.parametrize(
    ("url", "location"),
    [
        # NOTE: UTS 46 disallows these; Python's IDNA codec maps them, "\u2488" (DIGIT ONE
        # FULL STOP) to "1.": the Location's host was a1.b.example, where a browser, given the
        # app's URL, goes nowhere. Percent-encoded, the browser maps (and refuses) it itself.
        ("https://a\u2488b.example/", "https://a%E2%92%88b.example/"),
        ("https://good\u2024example/x", "https://good%E2%80%A4example/x"),
        ("//a\u33c2b.example", "//a%E3%8F%82b.example"),
        ("https://\ufe52evil.example", "https://%EF%B9%92evil.example"),
        ("https://\u10a0b.example", "https://%E1%82%A0b.example"),
        ("https://a\u1806b.example", "https://a%E1%A0%86b.example"),
    ],
)
def test_a_redirect_percent_encodes_a_host_that_browsers_refuse(
    make_client: MakeClient, url: str, location: str
) -> None:
    assert make_client(_redirecting(url)).get("/go").headers["location"] == location


def _redirecting(url: str) -> App:
    """An app whose ``/go`` redirects to ``url`` as written."""
    app = App()

    @app.get("/go")
    def go(request: Request) -> Response:
        return Response.redirect(url)

    return app


# -- converters: how often a request runs them -----------------------------------------------


def _counting_app(calls: list[str], *, own_head: bool = False) -> App:
    """An app whose ``{who:user}`` converter records each segment it is given; with
    ``own_head``, a template of it takes ``HEAD`` itself."""

    def user(text: str) -> str:
        calls.append(text)
        if not text.startswith("u"):
            raise ValueError(text)
        return text

    app = App()
    app.add_converter("user", user)

    @app.get("/users/{who:user}")
    def profile(request: Request, who: str) -> str:
        return who

    if own_head:

        @app.route("/users/{who:user}/posts", methods=["GET", "HEAD"])
        def posts(request: Request, who: str) -> str:
            return f"posts of {who}" if request.method == "GET" else "own HEAD"

    return app


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_a_head_runs_the_converter_once_as_a_get_does(make_client: MakeClient, method: str) -> None:
    # NOTE: a HEAD searched the templates for HEAD (the first way, then every way, for the
    # methods allowed), then again for GET: a custom converter ran three times.
    calls: list[str] = []
    response = make_client(_counting_app(calls)).request(method, "/users/u1")
    assert response.status_code == 200
    assert response.headers["content-length"] == "2"
    assert calls == ["u1"]


@pytest.mark.parametrize(
    ("method", "path", "status", "allow"),
    [
        ("OPTIONS", "/users/u1", 204, "GET, HEAD, OPTIONS"),
        ("DELETE", "/users/u1", 405, "GET, HEAD, OPTIONS"),
        ("GET", "/users/x1", 404, None),
        ("OPTIONS", "/users/x1", 404, None),
    ],
)
def test_a_refusal_or_an_automatic_options_runs_the_converter_once(
    make_client: MakeClient, method: str, path: str, status: int, allow: str | None
) -> None:
    # NOTE: the first way, then every way, each called the converter; an automatic OPTIONS
    # answer then looked the path up again for its Allow: four calls for one OPTIONS.
    calls: list[str] = []
    response = make_client(_counting_app(calls)).request(method, path)
    assert (response.status_code, response.headers.get("allow")) == (status, allow)
    assert calls == [path.rsplit("/", 1)[1]]


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("HEAD", "/users/u1/posts", 200), ("HEAD", "/users/u1", 200), ("HEAD", "/users/x1", 404)],
)
def test_a_head_runs_the_converter_once_where_a_template_takes_head_itself(
    make_client: MakeClient, method: str, path: str, status: int
) -> None:
    # NOTE: the templates were searched for HEAD (twice: the first way, then every way), then
    # for GET (the first way again).
    calls: list[str] = []
    response = make_client(_counting_app(calls, own_head=True)).request(method, path)
    assert response.status_code == status
    assert calls == [path.split("/")[2]]


@pytest.mark.parametrize(
    ("path", "status", "converted"),
    [("/u1/t19", 200, 1), ("/u1/x", 404, 1), ("/x1/t19", 404, 1), ("/x1/x", 404, 1)],
)
def test_many_parameters_at_one_segment_are_tried_only_where_the_path_goes_on(
    make_client: MakeClient, path: str, status: int, converted: int
) -> None:
    # NOTE: a parameter each, /{a0:user}/t0 ... /{a19:user}/t19: every branch was tried (the
    # converter called 21 times), where only the last goes on with /t19, and none with /x.
    # The lookup's first way still tried each in turn until one took the segment: the first
    # (twice the calls needed) or, for a segment that every one refuses, all 20; among 2,000
    # such {a:int} routes, a 404 took 2.9 ms. Now they are one branch, whatever their names:
    # the segment is converted once.
    calls: list[str] = []
    app = _counting_app(calls)
    for index in range(20):
        app.get(f"/{{a{index}:user}}/t{index}", name=f"t{index}")(lambda request, **_: "t")
    response = make_client(app).get(path)
    assert (response.status_code, len(calls)) == (status, converted)


@pytest.mark.parametrize(
    ("path", "status", "converted"),
    [("/u1/u2/t99", 200, ["u1", "u2"]), ("/u1/u2/x", 404, ["u1", "u2"]), ("/x/u/t1", 404, ["x"])],
)
def test_parameters_of_other_names_at_two_segments_share_one_branch(
    make_client: MakeClient, path: str, status: int, converted: list[str]
) -> None:
    # NOTE: /{a0:user}/{b0:user}/t0 ... /{a99:user}/{b99:user}/t99: each second parameter had
    # a branch of its own name, so every route was visited and the converter called about
    # 200 times for the last (1,000 such routes: 2 ms); one branch now, by position, and one
    # call a segment.
    calls: list[str] = []
    app = _counting_app(calls)
    for index in range(100):
        app.get(f"/{{a{index}:user}}/{{b{index}:user}}/t{index}", name=f"t{index}")(
            lambda request, **params: ",".join(f"{k}={v}" for k, v in params.items())
        )
    response = make_client(app).get(path)
    assert (response.status_code, calls) == (status, converted)
    if status == 200:
        assert response.text == "a99=u1,b99=u2"


def test_one_segment_is_converted_once_by_two_routes_of_one_converter(
    make_client: MakeClient,
) -> None:
    # NOTE: /{a:user}/x and /{b:user}/y had a branch each: /u1/y called the converter for the
    # first, which went nowhere, then again for the second.
    calls: list[str] = []
    app = _counting_app(calls)
    app.get("/{a:user}/x", name="x")(lambda request, a: f"x {a}")
    app.get("/{b:user}/y", name="y")(lambda request, b: f"y {b}")
    app.get("/v/{c:user}/z", name="z")(lambda request, c: f"z {c}")
    app.get("/{d}/{e:user}/w", name="w")(lambda request, d, e: f"w {d} {e}")
    client = make_client(app)
    assert (client.get("/u1/y").text, calls) == ("y u1", ["u1"])
    calls.clear()
    # NOTE: the same segment, through two branches (/v/ and {d}): converted once ("v" is
    # the first segment, which {a:user} refuses).
    assert (client.get("/v/u2/w").text, sorted(calls)) == ("w v u2", ["u2", "v"])


def test_a_template_that_takes_head_itself_still_answers_it(make_client: MakeClient) -> None:
    client = make_client(_counting_app([], own_head=True))
    assert client.head("/users/u1/posts").headers["content-length"] == str(len("own HEAD"))
    assert client.head("/users/u1").headers["content-length"] == "2"
    assert client.head("/users/x1").status_code == 404
    assert client.request("DELETE", "/users/u1").headers["allow"] == "GET, HEAD, OPTIONS"


# -- templates with an empty segment, after a path parameter's branch --------------------------


def test_a_path_parameter_that_takes_an_empty_segment_and_more_refuses_the_route_it_hides() -> None:
    # NOTE: "/5//x" is the {a} "5" and a {rest:path} of "/x" to the first route: the second
    # was never reached, and was let be at startup (an empty segment was taken for no
    # parameter's, the path parameter's included).
    app = App()
    app.get("/{a}/{rest:path}", name="first")(lambda request, a, rest: rest)
    app.get("/{b:int}//x", name="second")(lambda request, b: "second")
    with pytest.raises(ValueError, match=r"^GET /\{b:int\}//x \('second'\) is never reached"):
        app.as_wsgi()


def test_an_empty_last_segment_stays_apart_from_a_path_parameter(make_client: MakeClient) -> None:
    app = App()
    app.get("/{a}/{rest:path}", name="first")(lambda request, a, rest: f"first {rest}")
    app.get("/{b:int}/", name="second")(lambda request, b: f"second {b}")
    client = make_client(app)
    assert client.get("/5/").text == "second 5"
    assert client.get("/5//x").text == "first /x"


def test_a_template_added_after_the_first_request_takes_head_itself(
    make_client: MakeClient,
) -> None:
    # NOTE: whether a template takes HEAD is kept with the plan's table: a route added once
    # the app serves (a startup hook's, say) must still turn the HEAD-as-GET shortcut off.
    app = _counting_app([])
    client = make_client(app)
    assert client.head("/users/u1/seen").status_code == 404

    @app.route("/users/{who:user}/seen", methods=["HEAD"])
    def seen(request: Request, who: str) -> Response:
        return Response(b"", headers={"x-seen": who})

    response = client.head("/users/u1/seen")
    assert (response.status_code, response.headers["x-seen"]) == (200, "u1")
    assert client.head("/users/u1").headers["content-length"] == "2"
    assert client.get("/users/u1/seen").headers["allow"] == "HEAD, OPTIONS"


# -- {name:path}: a long value is checked for dot segments without a list of its segments -----


def test_a_path_value_is_checked_for_dot_segments_without_splitting_it() -> None:
    # NOTE: the check split the value at every "/" once it held a "." (Static's paths are
    # such values): 255 KB of "a./" made 85,000 strings, some 5 MB, and took 7 ms of the 10 a
    # request cost; "ab/", without a dot, 3 (fuzz3). Now one copy of the value.
    value = "a./" * 85_000 + "b"
    tracemalloc.start()
    try:
        assert _to_path(value) == value
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2 * len(value) + 10_000, f"{peak} bytes for a value of {len(value)}"


@pytest.mark.parametrize(
    "value",
    [".", "..", "./a", "../a", "a/.", "a/..", "a/./b", "a/../b", "a//./b", "./.", "a/b/.."],
)
def test_a_path_value_with_a_dot_segment_matches_no_route(
    make_client: MakeClient, value: str
) -> None:
    with pytest.raises(ValueError):
        _to_path(value)
    app = App()
    app.get("/f/{rest:path}")(lambda request, rest: rest)
    # NOTE: sent as %2E, which a client leaves as it is; the path is matched decoded.
    sent = "/".join("%2E" * len(part) if part in (".", "..") else part for part in value.split("/"))
    assert make_client(app).get("/f/" + sent).status_code == 404


@pytest.mark.parametrize("value", ["a.", ".a", "...", "a/.b/c.", "a..b", "a/.../b", "a/b.", "a//b"])
def test_a_path_value_with_dots_in_its_segments_is_taken(
    make_client: MakeClient, value: str
) -> None:
    assert _to_path(value) == value
    app = App()
    app.get("/f/{rest:path}")(lambda request, rest: rest)
    assert make_client(app).get("/f/" + value).text == value


# -- a path of many segments (hostile5) --------------------------------------------------------


def _deep_app() -> App:
    app = App()

    @app.get("/a/{b}/c")
    def three(request: Request, b: str) -> str:
        return f"three {b}"

    @app.get("/files/{name}/{rest:path}")
    def rest(request: Request, name: str, rest: str) -> str:
        return f"rest {name} {len(rest)} {rest[:8]} {rest[-8:]}"

    @app.post("/a/{b}/c/d")
    def four(request: Request, b: str) -> str:
        return f"four {b}"

    return app


def test_a_path_of_many_segments_is_split_no_deeper_than_the_longest_template() -> None:
    # NOTE: the whole path was split into its segments, one str each: a 256 KiB path of
    # "/ab/ab/..." made 87,000 of them, 5.4 MB (21 bytes a byte), for a 404 among templates
    # of four segments at most.
    table = _deep_app()._http
    path = "/ab" * 87_381
    tracemalloc.start()
    try:
        assert table.lookup("GET", path)[0] is None
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 3 * len(path)


@pytest.mark.parametrize(
    ("path", "status", "text"),
    [
        ("/a/x/c", 200, "three x"),
        ("/a/x/c/d", 405, None),
        ("/a/x/c/d/e", 404, None),
        ("/a/x/c/d/" + "e/" * 20_000, 404, None),
        ("/files/n/" + "s/" * 20_000 + "t", 200, "rest n 40001 s/s/s/s/ /s/s/s/t"),
        ("/files/n/a/b", 200, "rest n 3 a/b a/b"),
    ],
)
def test_a_path_of_many_segments_is_routed_as_before(
    make_client: MakeClient, path: str, status: int, text: str | None
) -> None:
    response = make_client(_deep_app()).get(path)
    assert response.status_code == status
    if text is not None:
        assert response.text == text


class _SplitWhole(RouteTable[str]):
    """A table that splits every path into all of its segments, as before hostile5."""

    def _segments(self, path: str) -> list[str]:
        return path[1:].split("/")


def _refusing(remainder: int) -> Converter:
    def to_python(text: str) -> str:
        if text and len(text) % 3 == remainder:
            raise ValueError(text)
        return text + str(remainder)

    return Converter(f"c{remainder}", to_python)


# NOTE: one that takes anything (dots too), and enough of them for a node's ahead map.
_CONVERTERS = {
    **BUILTIN_CONVERTERS,
    "any": Converter("any", lambda text: text),
    **{f"c{remainder}": _refusing(remainder) for remainder in range(9)},
}
_PARAMS = ["{p}", "{p:int}", "{p:any}", *(f"{{p:c{remainder}}}" for remainder in range(9))]


@st.composite
def _templates(draw: st.DrawFn) -> str:
    segments = []
    for index in range(draw(st.integers(1, 5))):
        if draw(st.booleans()):
            segments.append(draw(st.sampled_from(["a", "b", "1", ""])))
        else:
            segments.append(draw(st.sampled_from(_PARAMS)).replace("p", f"p{index}", 1))
    if draw(st.booleans()):
        segments.append("{rest:path}")
    return "/" + "/".join(segments)


@settings(max_examples=300, deadline=None, database=None)
@given(
    routes=st.lists(
        st.tuples(_templates(), st.sampled_from([("GET",), ("POST",), ("GET", "HEAD")])),
        min_size=1,
        max_size=24,
    ),
    paths=st.lists(
        st.lists(st.sampled_from(["a", "b", "1", "", ".", "..", "ab", "abc"]), max_size=9).map(
            lambda segments: "/" + "/".join(segments)
        ),
        min_size=1,
        max_size=6,
    ),
    method=st.sampled_from(["GET", "POST", "HEAD", "DELETE"]),
    first=st.integers(0, 24),
)
def test_a_path_split_no_deeper_than_the_longest_template_is_routed_as_split_whole(
    routes: list[tuple[str, tuple[str, ...]]], paths: list[str], method: str, first: int
) -> None:
    # NOTE: the value, the parameters and the methods allowed, with routes of both tables
    # added after a lookup too, and a second table's lookup given what the first converted
    # (as the HTTP table's are to the WebSocket one).
    tables = {
        "split": (RouteTable[str](_CONVERTERS), RouteTable[str](_CONVERTERS)),
        "whole": (_SplitWhole(_CONVERTERS), _SplitWhole(_CONVERTERS)),
    }

    def routed(http: RouteTable[str], ws: RouteTable[str], path: str) -> Any:
        value, params, allowed, converted = http.lookup_keeping(method, path)
        other = ws.lookup("GET", path, converted) if converted is not None else None
        instead = http.lookup_templates(method, path, "GET")[:3]
        return (
            value,
            params,
            set(allowed),
            other and (other[0], other[1], set(other[2])),
            (
                instead[0],
                instead[1],
                set(instead[2]),
            ),
        )

    def agree() -> None:
        for path in paths:
            split, whole = (routed(*tables[kind], path) for kind in ("split", "whole"))
            assert split == whole, path

    for index, (template, methods) in enumerate(routes):
        if index == first:
            agree()
        try:
            segments = parse_template(template)
        except ValueError:
            continue  # NOTE: a template refused ("//{p}"): not this test's matter.
        route = Route(
            template=template,
            methods=frozenset(methods),
            handler=lambda request: "",
            name=template,
            is_async=False,
            kind="websocket" if index % 3 == 2 else "http",
            segments=segments,
        )
        for http, ws in tables.values():
            with contextlib.suppress(ValueError):  # NOTE: a clash: not this test's matter.
                (ws if route.kind == "websocket" else http).add(route, f"{template} {methods}")
    agree()
