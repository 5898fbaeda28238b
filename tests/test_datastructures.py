"""What reading a request's headers, query or form key by key costs, and the index that keeps
it linear right through ``Headers``' changes (``_datastructures``, ``RequestHeaders`` of
``_fields``).

Costs are counted, never timed: the comparisons of names (a ``str`` that counts them), or the
Python lines run (``traced_lines``).
"""

from __future__ import annotations

import copy
import random
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import pytest
from conftest import MakeClient, traced_lines

import microweb
from microweb import App, Request
from microweb._datastructures import Headers, MultiDict, trusted_headers
from microweb._fields import RequestFields, RequestHeaders
from microweb._mapping_checks import INDEXED_FROM

# NOTE: the default max_headers and max_query_params: what any client may send.
MANY = 1000


class Counted(str):
    """A name that counts how often it is compared (``Counted.compared``)."""

    compared = 0

    def __eq__(self, other: object) -> bool:
        Counted.compared += 1
        return str.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        Counted.compared += 1
        return str.__ne__(self, other)

    __hash__ = str.__hash__


def comparisons(read: Callable[[], object]) -> int:
    """How many times ``read()`` compares a ``Counted`` name."""
    Counted.compared = 0
    read()
    return Counted.compared


def many_pairs(repeated: bool) -> list[tuple[str, str]]:
    """``MANY`` pairs, every name once, or (``repeated``) the most names twice."""
    names = [f"x-n{i // 2 if repeated else i}" for i in range(MANY)]
    return [(Counted(name), str(i)) for i, name in enumerate(names)]


@pytest.mark.parametrize("repeated", [False, True])
def test_request_headers_read_name_by_name_compare_names_a_few_times_each(
    repeated: bool,
) -> None:
    # NOTE: every lookup went over every line: dict(request.headers) compared 500,000 names
    # for 1,000 lines (15 ms), a getlist() or an "in" for each name as many.
    headers = trusted_headers(many_pairs(repeated), RequestHeaders)
    names = list(headers)
    reads: list[Callable[[], object]] = [
        lambda: dict(headers),
        lambda: {name: headers.getlist(name) for name in names},
        lambda: [name in headers for name in names],
        lambda: [headers.get(name.upper()) for name in names],
    ]
    for read in reads:
        assert comparisons(read) < 4 * MANY
    assert dict(headers)["x-n1"] == ("1" if not repeated else "2, 3")
    assert headers.getlist("X-N1") == (["1"] if not repeated else ["2", "3"])


@pytest.mark.parametrize("repeated", [False, True])
def test_a_query_or_form_read_key_by_key_compares_keys_a_few_times_each(repeated: bool) -> None:
    # NOTE: getlist() went over every field: {k: form.getlist(k) for k in form} compared
    # 1,000,000 keys for 1,000 fields (17 ms).
    fields = RequestFields(many_pairs(repeated))
    assert comparisons(lambda: {key: fields.getlist(key) for key in fields}) < 4 * MANY
    assert comparisons(lambda: [fields.getlist(key.upper()) for key in fields]) < 4 * MANY
    assert fields.getlist("x-n1") == (["1"] if not repeated else ["2", "3"])
    assert fields.getlist("x-n1", type=int) == ([1] if not repeated else [2, 3])
    assert fields.getlist("missing") == []


@pytest.mark.parametrize("pairs", [3, INDEXED_FROM, INDEXED_FROM + 1, 200])
def test_multidict_getlist_gives_every_value_in_order(pairs: int) -> None:
    items = [(f"k{i % 3}" if i % 2 else f"u{i}", str(i)) for i in range(pairs)]
    fields = MultiDict(items)
    for key in [*fields, "missing"]:
        expected = [value for name, value in items if name == key]
        assert fields.getlist(key) == expected
        # NOTE: a copy each time: the caller may change the list it got.
        fields.getlist(key).append("changed")
        assert fields.getlist(key) == expected


def expected_lines(headers: Headers, name: str) -> list[str]:
    key = name.lower()
    return [value for item_name, value in headers.items() if item_name == key]


def expected_value(headers: Headers, lines: list[str]) -> str | None:
    """What ``get()`` gives for ``lines``: the request's joined, the response's first."""
    if not lines:
        return None
    return ", ".join(lines) if isinstance(headers, RequestHeaders) else lines[0]


def check_reads(headers: Headers, names: list[str]) -> None:
    """Check every read of ``headers`` against its pairs, read one by one."""
    for name in names:
        lines = expected_lines(headers, name)
        assert headers.getlist(name) == lines
        assert headers.getlist(name, type=len) == [len(line) for line in lines]
        assert (name in headers) is bool(lines)
        assert headers.get(name) == expected_value(headers, lines)
        assert dict(headers).get(name.lower()) == headers.get(name)


CHANGES: list[tuple[str, Callable[[Headers], Any]]] = [
    ("add a new name", lambda h: h.add("X-New", "n1")),
    ("add to a name", lambda h: h.add("x-rep", "r-added")),
    ("set a repeated name", lambda h: h.__setitem__("X-Rep", "r-set")),
    ("set a new name", lambda h: h.__setitem__("x-set", "s")),
    ("set to the same length", lambda h: h.__setitem__("x-a0", "replaced")),
    ("set the last name again", lambda h: h.__setitem__("x-a0", "replaced again")),
    ("delete", lambda h: h.__delitem__("x-a1")),
    ("pop", lambda h: h.pop("X-Rep")),
    ("pop a missing name", lambda h: h.pop("x-gone", "default")),
    ("setdefault a new name", lambda h: h.setdefault("X-Default", "d")),
    ("setdefault a present one", lambda h: h.setdefault("x-new", "ignored")),
    ("assign a list", lambda h: setattr(h, "_list", [*h._list[3:], ("x-rep", "r-again")])),
    ("append to the list", lambda h: h._list.append(("x-a2", "appended"))),
]


@pytest.mark.parametrize("kind", [Headers, RequestHeaders])
@pytest.mark.parametrize("size", [4, INDEXED_FROM, INDEXED_FROM + 1, 100])
def test_headers_read_right_after_every_change(size: int, kind: type[Headers]) -> None:
    lines = [(f"x-a{i}", f"a{i}") for i in range(size - 2)] + [("x-rep", "r1"), ("x-rep", "r2")]
    headers = trusted_headers(lines, kind)
    names = ["X-A0", "x-a1", "x-a2", "X-REP", "x-new", "x-set", "x-default", "x-missing"]
    check_reads(headers, names)
    for change, apply in CHANGES:
        apply(headers)
        try:
            check_reads(headers, names)
        except AssertionError as exc:
            raise AssertionError(f"after {change}: {exc}") from exc
    # NOTE: a copy has lines of its own, as a dict's copy has: a line added to it is not in
    # the headers it was copied from.
    for twin in (copy.deepcopy(headers), copy.copy(headers), headers.copy()):
        assert type(twin) is kind
        assert twin == headers
        check_reads(twin, names)
        twin.add("x-twin", "t")
        check_reads(twin, [*names, "x-twin"])
        assert "x-twin" not in headers
        check_reads(headers, names)


# NOTE: names that differ by case or by "_" and "-", a single-valued one, and enough others
# that a sequence crosses INDEXED_FROM both ways.
RANDOM_NAMES = ["X-A", "x-a", "x_a", "Content-Type", "set-cookie"] + [f"x-{i}" for i in range(12)]


def random_change(rng: random.Random, headers: Headers, model: list[Any]) -> Headers:
    """Make one random change to ``headers`` (a copy or new headers, for some), and the same
    to ``model``, a plain list of their lines; return the headers changed."""
    name, value = rng.choice(RANDOM_NAMES), f"v{rng.randrange(1000)}"
    key, kind = name.lower(), rng.randrange(7)
    kept = [line for line in model if line[0] != key]
    if kind == 0:
        for _ in range(rng.choice([1, 1, 20])):
            name = rng.choice(RANDOM_NAMES)
            if not (name.lower() == "content-type" and "content-type" in headers):
                headers.add(name, value)
                model.append((name.lower(), value))
    elif kind == 1:
        headers[name] = value
        model[:] = [*kept, (key, value)]
    elif kind in (2, 3):
        found = headers.pop(name, "none") if kind == 2 else headers.setdefault(name, value)
        in_model = [line[1] for line in model if line[0] == key]
        assert found == (expected_value(headers, in_model) or (value if kind == 3 else "none"))
        model[:] = kept if kind == 2 else model if in_model else [*model, (key, value)]
    elif kind == 4:
        headers = rng.choice(
            [headers.copy, lambda: copy.copy(headers), lambda: copy.deepcopy(headers)]
        )()
    elif kind == 5:
        del model[rng.randrange(len(model) + 1) :]
        headers = trusted_headers(list(model), type(headers))
    elif key in headers:
        del headers[name]
        model[:] = kept
    return headers


@pytest.mark.parametrize("kind", [Headers, RequestHeaders])
def test_headers_read_as_a_linear_scan_after_random_changes(kind: type[Headers]) -> None:
    # NOTE: every read, after every change of a few hundred seeded sequences (a read before
    # most changes makes the index that change must not leave stale), against a plain list.
    # A response's headers (Headers) are indexed too, and change in place (review296).
    for seed in range(200):
        rng = random.Random(seed)
        model = [(rng.choice(RANDOM_NAMES).lower(), str(i)) for i in range(rng.choice([3, 40]))]
        headers = trusted_headers(list(model), kind)
        for _ in range(12):
            headers.get(rng.choice(RANDOM_NAMES))
            headers = random_change(rng, headers, model)
            assert headers.items() == model, seed
            check_reads(headers, [*RANDOM_NAMES, "X-MISSING"])


# NOTE: enough names that most have one line, past INDEXED_FROM, where a delete finds them
# in the index (review303), and a few that repeat.
MANY_NAMES = [f"x-n{i}" for i in range(150)] + ["X-Rep", "set-cookie"]


@pytest.mark.parametrize("kind", [Headers, RequestHeaders])
@pytest.mark.parametrize("size", [4, INDEXED_FROM + 1, 120])
def test_headers_match_a_list_after_random_adds_sets_and_deletes(
    size: int, kind: type[Headers]
) -> None:
    for seed in range(40):
        rng = random.Random(seed)
        model = [(rng.choice(MANY_NAMES).lower(), str(i)) for i in range(size)]
        headers = trusted_headers(list(model), kind)
        for step in range(80):
            name, value = rng.choice(MANY_NAMES), f"v{step}"
            key, change = name.lower(), rng.randrange(5)
            kept = [line for line in model if line[0] != key]
            if change == 0:
                headers.add(name, value)
                model.append((key, value))
            elif change == 1:
                headers[name] = value
                model[:] = [*kept, (key, value)]
            elif change == 2:
                lines = [line[1] for line in model if line[0] == key]
                assert headers.pop(name, "none") == (expected_value(headers, lines) or "none")
                model[:] = kept
            elif len(kept) < len(model):
                del headers[name]
                model[:] = kept
            else:
                with pytest.raises(KeyError):
                    del headers[name]
            assert headers.items() == model, (seed, step)
            check_reads(headers, [name, rng.choice(MANY_NAMES), "x-missing"])
        check_reads(headers, MANY_NAMES)


def delete_one_by_one(headers: Headers, names: list[str]) -> None:
    """Delete each of ``names`` from ``headers``: half with ``del``, half with ``pop()``."""
    for i, name in enumerate(names):
        if i % 2:
            headers.pop(name)
        else:
            del headers[name]


@pytest.mark.parametrize("kind", [Headers, RequestHeaders])
@pytest.mark.parametrize("order", ["first", "last", "random"])
def test_deleting_headers_one_by_one_costs_lines_in_proportion(
    kind: type[Headers], order: str
) -> None:
    # NOTE: each del and pop() made the list again in a Python pass: deleting 2,000 lines one
    # by one ran 4,042,475 lines, 4,000 ran 16,087,475 (review303). Counted, never timed.
    def cost(count: int) -> int:
        names = [f"X-Line-{i}" for i in range(count)]
        headers = trusted_headers([(name.lower(), "v") for name in names], kind)
        if order == "last":
            names.reverse()
        elif order == "random":
            random.Random(count).shuffle(names)
        missing, kept = names.pop(), names.pop(0)
        del headers[missing]
        lines, _ = traced_lines(lambda: delete_one_by_one(headers, names))
        assert headers.items() == [(kept.lower(), "v")]
        with pytest.raises(KeyError):
            del headers[missing]
        return lines

    small, large = cost(MANY), cost(2 * MANY)
    assert large < 2.2 * small, (small, large)
    assert large < 40 * 2 * MANY, large


def test_reading_many_headers_fields_and_query_is_linear(make_client: MakeClient) -> None:
    # NOTE: what an app's handler reads of them, counted in Python lines run (for a few per
    # line, field or pair) and checked whole, under both interfaces. 300 of each: the old
    # lookups ran 90,000 lines for each read.
    count = 300
    app = App()

    @app.post("/read")
    def read(request: Request) -> dict[str, Any]:
        headers, query, form = request.headers, request.query, request.form()
        reads = {
            "headers": lambda: dict(headers),
            "header lists": lambda: {name: headers.getlist(name) for name in headers},
            "header checks": lambda: [name in headers for name in headers],
            "query": lambda: {key: query.getlist(key) for key in query},
            "form": lambda: {key: form.getlist(key) for key in form},
        }
        counted = {what: traced_lines(read) for what, read in reads.items()}
        return {what: {"lines": lines, "read": value} for what, (lines, value) in counted.items()}

    pairs = [(f"k{i % (count // 2)}", str(i)) for i in range(count)]
    header_lines = [(f"x-{name}", value) for name, value in pairs]
    form_type = ("content-type", "application/x-www-form-urlencoded")
    response = make_client(app).post(
        "/read?" + urlencode(pairs), content=urlencode(pairs), headers=[*header_lines, form_type]
    )
    body = response.json()
    for what, found in body.items():
        assert found["lines"] < 30 * count, what
    lists: dict[str, list[str]] = {}
    for name, value in pairs:
        lists.setdefault(name, []).append(value)
    joined = {f"x-{name}": ", ".join(values) for name, values in lists.items()}
    assert {name: body["headers"]["read"][name] for name in joined} == joined
    for name, values in body["header lists"]["read"].items():
        assert ", ".join(values) == body["headers"]["read"][name]
    assert all(body["header checks"]["read"])
    assert body["query"]["read"] == body["form"]["read"] == lists


def test_a_copy_of_response_headers_has_lines_of_its_own() -> None:
    headers = Headers([("Set-Cookie", "a=1"), ("X-Kept", "k")])
    for twin in (copy.copy(headers), headers.copy()):
        assert type(twin) is Headers
        assert twin == headers
        twin.add("Set-Cookie", "b=2")
        twin["X-Kept"] = "changed"
        assert headers.items() == [("set-cookie", "a=1"), ("x-kept", "k")]


def test_a_copy_of_a_subclass_keeps_its_own_attributes() -> None:
    class Tagged(Headers):
        def __init__(self, tag: str) -> None:
            super().__init__([("x-a", "1")])
            self.tag = tag

    headers = Tagged("kept")
    twin = copy.copy(headers)
    assert type(twin) is Tagged and twin.tag == "kept" and twin == headers
    twin.add("x-b", "2")
    assert "x-b" not in headers


def test_a_copy_of_a_subclass_with_slots_keeps_its_own_attributes() -> None:
    # NOTE: copy() copied a subclass's __dict__ only: an attribute in a slot of its own was
    # lost by copy() and copy.copy(), where copy.deepcopy() kept it.
    class Tagged(Headers):
        __slots__ = ("__private", "tag", "unset")

        def __init__(self, tag: str) -> None:
            super().__init__([("x-a", "1")])
            self.tag, self.__private = tag, "private"

        def private(self) -> str:
            return self.__private

    headers = Tagged("kept")
    for twin in (headers.copy(), copy.copy(headers), copy.deepcopy(headers)):
        assert type(twin) is Tagged and twin.tag == "kept" and twin == headers
        assert twin.private() == "private" and not hasattr(twin, "unset")
        twin.add("x-b", "2")
        assert "x-b" not in headers


def test_a_copy_keeps_the_slots_of_odd_subclasses() -> None:
    # NOTE: copy() rebuilt slot names from __slots__: a class named "_" (whose private names
    # are not mangled), slots given by a generator (spent once the class is made), and a
    # subclass's own slot named like RequestHeaders' index (_index) were each lost by copy().
    class _(Headers):
        __slots__ = ("__x",)

    class Spent(Headers):
        __slots__ = (name for name in ("spent",))

    class Indexed(Headers):
        __slots__ = ("_index",)

    odd = _([("x-a", "1")])
    setattr(odd, "__x", "not mangled")
    spent = Spent([("x-a", "1")])
    spent.spent = "spent"  # type: ignore[attr-defined]
    indexed = Indexed([("x-a", "1")])
    indexed._index = "mine"  # type: ignore[attr-defined]
    assert getattr(odd.copy(), "__x") == "not mangled"
    assert spent.copy().spent == "spent"  # type: ignore[attr-defined]
    for twin in (indexed.copy(), copy.copy(indexed), copy.deepcopy(indexed)):
        assert twin._index == "mine"  # type: ignore[attr-defined]


def test_a_subclass_named_headers_keeps_its_own_index_slot() -> None:
    # NOTE: Headers' index was a slot "__index", mangled to _Headers__index: a user's subclass
    # named Headers with a slot "__index" of its own replaced it (the class was made, with no
    # error), so the user's value broke every lookup past INDEXED_FROM lines (ValueError) and
    # a lookup overwrote the user's value (review303).
    class Headers(microweb.Headers):
        __slots__ = ("__index",)

        def __init__(self, lines: list[tuple[str, str]]) -> None:
            super().__init__(lines)
            self.__index = "the user's"

        def own(self) -> str:
            return self.__index

    lines = [(f"x-{n}", str(n)) for n in range(INDEXED_FROM + 1)]
    headers = Headers(lines)
    assert headers["x-3"] == "3" and headers.getlist("X-4") == ["4"]
    headers["x-new"] = "new"
    del headers["x-5"]
    assert "x-5" not in headers and headers.get("x-new") == "new"
    assert headers.own() == "the user's"
    for twin in (headers.copy(), copy.copy(headers), copy.deepcopy(headers)):
        assert twin.own() == "the user's" and twin == headers and twin["x-6"] == "6"


def test_a_copy_keeps_the_slots_below_an_init_subclass_that_calls_no_super() -> None:
    # NOTE: the slots were found by Headers.__init_subclass__, which a subclass's own, not
    # calling super(), kept from its subclasses: theirs copied their parent's slots alone
    # (review295).
    class Quiet(Headers):
        __slots__ = ("parent",)

        def __init_subclass__(cls, **kwargs: Any) -> None:
            pass

    class Below(Quiet):
        __slots__ = ("child",)

    below = Below([("x-a", "1")])
    below.parent, below.child = "p", "c"
    for twin in (below.copy(), copy.copy(below)):
        assert type(twin) is Below and (twin.parent, twin.child) == ("p", "c")
    quiet = Quiet([("x-a", "1")])
    quiet.parent = "p"
    assert quiet.copy().parent == "p" and not hasattr(Below([]).copy(), "child")
    # NOTE: Headers' own lines are copied apart: the slot's value was set, then set again.
    assert sorted(Below._copied_slots[1]) == ["child", "parent"]


def test_a_copy_of_request_headers_makes_its_index_again() -> None:
    headers = trusted_headers([(f"x-{n}", str(n)) for n in range(INDEXED_FROM + 1)], RequestHeaders)
    assert headers["x-3"] == "3"  # NOTE: indexed now.
    twin = headers.copy()
    assert not hasattr(twin, "_microweb_index")
    twin["x-3"] = "three"
    assert twin["x-3"] == "three" and headers["x-3"] == "3"


class PickledHeaders(Headers):
    """A subclass with a slot of its own, pickled (a module-level class, as pickle needs)."""

    __slots__ = ("tag",)


@pytest.mark.parametrize("kind", [Headers, RequestHeaders, PickledHeaders])
def test_pickled_headers_carry_their_lines_and_not_their_index(kind: type[Headers]) -> None:
    # NOTE: the index of an indexed Headers (every name's values, a second copy of the lines)
    # was pickled with the lines, and a deepcopy copied it too (review319).
    import pickle

    headers = kind([(f"x-{n}", str(n)) for n in range(INDEXED_FROM + 1)])
    if isinstance(headers, PickledHeaders):
        headers.tag = "kept"
    assert "x-3" in headers and hasattr(headers, "_microweb_index")  # NOTE: indexed now.
    for twin in (pickle.loads(pickle.dumps(headers)), copy.deepcopy(headers)):
        assert type(twin) is kind and twin == headers
        assert not hasattr(twin, "_microweb_index")
        assert getattr(twin, "tag", None) == getattr(headers, "tag", None)
        twin["x-3"] = "three"
        assert twin["x-3"] == "three" and headers["x-3"] == "3"
    assert b"_microweb_index" not in pickle.dumps(headers)


class SlottedFields(MultiDict[str]):
    """A subclass with a slot of its own (module-level, as pickle needs)."""

    __slots__ = ("tag",)


class NotedFields(MultiDict[str]):
    """A subclass with attributes of its own (a ``__dict__``)."""


@pytest.mark.parametrize("kind", [SlottedFields, NotedFields])
def test_a_pickled_multidict_subclass_keeps_its_own_attributes(kind: type[MultiDict[str]]) -> None:
    # NOTE: MultiDict's __getstate__ (review319) gave its pairs alone: a subclass's own slot
    # or attribute, which pickle and deepcopy kept before, was lost.
    import pickle

    fields = kind([("k", "1"), ("k", "2")])
    fields.tag = "kept"  # type: ignore[attr-defined]
    for twin in (pickle.loads(pickle.dumps(fields)), copy.deepcopy(fields)):
        assert type(twin) is kind and twin.getlist("k") == ["1", "2"]
        assert getattr(twin, "tag", None) == "kept"


def test_a_pickled_multidict_carries_its_pairs_and_not_its_index() -> None:
    import pickle

    fields = MultiDict([("k", str(n)) for n in range(INDEXED_FROM + 1)])
    assert fields.getlist("k")[:2] == ["0", "1"] and hasattr(fields, "_index")
    for twin in (pickle.loads(pickle.dumps(fields)), copy.deepcopy(fields)):
        assert not hasattr(twin, "_index")
        assert twin.multi_items() == fields.multi_items() and twin["k"] == "0"
        assert twin.getlist("k") == fields.getlist("k")
