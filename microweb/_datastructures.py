"""Multi-valued mappings: the query string, form data and headers."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, ClassVar, Generic, TypeVar, overload

from ._mapping_checks import (
    INDEXED_FROM,
    check_header,
    converted_all,
    converted_one,
    indexed,
    slot_names,
)

V = TypeVar("V")
D = TypeVar("D")
T = TypeVar("T")
H = TypeVar("H", bound="Headers")
# NOTE: what headers are given as, to Headers and Response: a mapping or (name, value) pairs.
HeaderItems = Mapping[str, str] | Iterable[tuple[str, str]]

# SPEC: RFC 9110 5.3: a field that is not list-based is sent once (Set-Cookie aside). These are
# the singletons a response carries whose second value a client reads its own way: Chromium
# refuses two Location or Content-Disposition values, and picks one of two Content-Types.
_SINGLE_VALUED = frozenset(
    [
        *("content-type", "content-length", "content-range", "content-location"),
        *("content-disposition", "location", "etag", "last-modified", "expires", "date"),
        *("age", "retry-after"),
    ]
)


class MultiDict(Mapping[str, V], Generic[V]):
    """An immutable mapping where a key may have several values, in arrival order.

    ``md[key]`` and ``md.get(key)`` give the first value, ``md.getlist(key)`` all of them;
    iteration, ``len`` and ``items()`` see each key once, ``multi_items()`` every pair.
    """

    __slots__ = ("_first", "_index", "_items")
    _index: dict[str, list[V]]  # NOTE: made on the first getlist() that needs it (INDEXED_FROM).

    def __init__(self, items: Iterable[tuple[str, V]] = ()) -> None:
        self._items = pairs = list(items)
        # PERF: the first value of each key; when no key repeats (the usual query), one dict()
        # call does it: 1.1 us for 20 fields instead of 4.0 with a list per key.
        first = dict(pairs)
        if len(first) != len(pairs):
            first = {}
            for key, value in pairs:
                first.setdefault(key, value)
        self._first = first

    def __getitem__(self, key: str) -> V:
        return self._first[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._first)

    def __len__(self) -> int:
        return len(self._first)

    def __contains__(self, key: object) -> bool:
        return key in self._first

    @overload
    def get(self, key: str) -> V | None: ...
    @overload
    def get(self, key: str, default: D) -> V | D: ...
    @overload
    def get(self, key: str, default: D, type: Callable[[V], T]) -> T | D: ...
    @overload
    def get(self, key: str, *, type: Callable[[V], T]) -> T | None: ...
    def get(
        self, key: str, default: object = None, type: Callable[[V], object] | None = None
    ) -> object:
        """Return the first value of ``key``, or ``default``.

        With ``type`` (``int``, say), the value is converted, and ``default`` is returned when
        the conversion raises ``ValueError``, ``TypeError`` or ``ArithmeticError`` (what
        ``Decimal`` raises): ``?page=x`` is page 1, as with Werkzeug's ``type=``.
        """
        if type is None:
            return self._first.get(key, default)
        if key not in self._first:
            return default
        return converted_one(self._first[key], type, default)

    @overload
    def getlist(self, key: str) -> list[V]: ...
    @overload
    def getlist(self, key: str, type: Callable[[V], T]) -> list[T]: ...
    def getlist(self, key: str, type: Callable[[V], object] | None = None) -> list[Any]:
        """Return every value of ``key`` in arrival order (an empty list when absent).

        With ``type``, each value is converted, and one whose conversion raises
        ``ValueError``, ``TypeError`` or ``ArithmeticError`` is left out.
        """
        first, items = self._first, self._items
        if len(first) == len(items):
            # PERF: no key repeats (the usual query): its value is the first one, 0.58 ->
            # 0.15 us a getlist() (review284).
            values = [first[key]] if key in first else []
        elif len(items) <= INDEXED_FROM:
            values = [value for name, value in items if name == key]
        else:
            try:
                index = self._index
            except AttributeError:
                index = self._index = indexed(items)
            values = index.get(key, []).copy()
        return values if type is None else converted_all(values, type)

    def multi_items(self) -> list[tuple[str, V]]:
        """Return every ``(key, value)`` pair in arrival order."""
        return list(self._items)

    def __getstate__(self) -> tuple[dict[str, Any] | None, dict[str, Any]]:
        # NOTE: pickle and deepcopy take the pairs, not the index made from them (review319),
        # and a subclass's own slots and attributes, which they took before (review322).
        slots = {
            name: getattr(self, name) for name in slot_names(type(self)) if hasattr(self, name)
        }
        slots["_first"], slots["_items"] = self._first, self._items
        return getattr(self, "__dict__", None) or None, slots

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._items!r})"


class Headers:
    """Case-insensitive, multi-valued HTTP headers.

    Names are kept in lower case. Names and values are checked when set (see ``check_header``):
    a control character such as CR or LF, a character beyond latin-1 or surrounding spaces, and
    a hop-by-hop name such as ``Connection`` or ``Transfer-Encoding`` raise ``ValueError``, so a
    header that would split the response, or that one server sends and another refuses, is
    never emitted. ``add`` refuses a second value for a header that takes one (``Content-Type``,
    ``Location``, ``ETag``...), which clients would read each their own way.

    ``headers[name]`` for a missing name raises ``KeyError``. The headers a client sent
    (``request.headers``, a multipart part's ``headers``) raise a ``KeyError`` that is also an
    ``HTTPError`` answering 400 (``missing header 'name'``), as a missing query parameter does.
    """

    __slots__ = ("_list", "_microweb_index")
    # NOTE: the lines of each name (see INDEXED_FROM), with the list they were read from and
    # its length. Past INDEXED_FROM lines, add(), headers[name] = value, del and pop() change
    # the index with the list; otherwise a list is only replaced (del, pop) or lengthened
    # (add, a new name set, trusted_headers(), the framework's own code), so an index of
    # another list or length is stale and made again. Named so that no subclass's own slot
    # takes its place: "__index" was mangled to _Headers__index, which a user's subclass also
    # named Headers made with a "__index" of its own (review303).
    _microweb_index: tuple[list[tuple[str, str]], int, dict[str, list[str]]]
    # NOTE: the class and the slots of a subclass's own that copy() copies (slot_names()),
    # found at its first copy, where the class is not its own (inherited). Found by
    # __init_subclass__, a subclass's that called no super() kept its subclasses' from it:
    # they copied their parent's slots alone (review295).
    _copied_slots: ClassVar[tuple[type, tuple[str, ...]]] = (object, ())

    def __init__(self, headers: HeaderItems | None = None) -> None:
        self._list: list[tuple[str, str]] = []
        if headers is not None:
            pairs = headers.items() if isinstance(headers, Mapping) else headers
            for name, value in pairs:
                self.add(name, value)

    def __getitem__(self, name: str) -> str:
        value = self._value(name.lower())
        if value is None:
            raise self._missing(name)
        return value

    def _missing(self, name: str) -> KeyError:
        return KeyError(name)

    def _lines(self) -> dict[str, list[str]]:
        """Every name's lines, in order, from an index kept while the list is unchanged."""
        items = self._list
        try:
            source, length, index = self._microweb_index
            if source is items and length == len(items):
                return index
        except AttributeError:
            pass
        index = indexed(items)
        self._microweb_index = (items, len(items), index)
        return index

    def _value(self, key: str) -> str | None:
        """The value ``get`` gives for the lower-case ``key``: its first line."""
        items = self._list
        if len(items) > INDEXED_FROM:
            lines = self._lines().get(key)
            return None if lines is None else lines[0]
        for item_name, value in items:
            if item_name == key:
                return value
        return None

    @overload
    def get(self, name: str) -> str | None: ...
    @overload
    def get(self, name: str, default: D) -> str | D: ...
    @overload
    def get(self, name: str, default: D, type: Callable[[str], T]) -> T | D: ...
    @overload
    def get(self, name: str, *, type: Callable[[str], T]) -> T | None: ...
    def get(
        self, name: str, default: object = None, type: Callable[[str], object] | None = None
    ) -> object:
        """Return the first value of ``name`` (for the headers a client sent, every line of
        it joined with ``", "``), or ``default``.

        With ``type`` (``int``, say), the value is converted, and ``default`` is returned when
        the conversion raises ``ValueError``, ``TypeError`` or ``ArithmeticError``, as
        ``request.query.get()`` does (and Werkzeug's ``type=``).
        """
        value = self._value(name.lower())
        if value is None:
            return default
        return value if type is None else converted_one(value, type, default)

    @overload
    def getlist(self, name: str) -> list[str]: ...
    @overload
    def getlist(self, name: str, type: Callable[[str], T]) -> list[T]: ...
    def getlist(self, name: str, type: Callable[[str], object] | None = None) -> list[Any]:
        """Return every value of ``name`` in order.

        With ``type``, each value is converted, and one whose conversion raises
        ``ValueError``, ``TypeError`` or ``ArithmeticError`` is left out.
        """
        key, items = name.lower(), self._list
        if len(items) > INDEXED_FROM:
            values = self._lines().get(key, []).copy()
        else:
            values = [value for item_name, value in items if item_name == key]
        return values if type is None else converted_all(values, type)

    def __setitem__(self, name: str, value: str) -> None:
        key, value = check_header(name, value)
        items = self._list
        if len(items) > INDEXED_FROM:
            self._set_indexed(key, value)
            return
        # PERF: a name not set yet (the usual case) appended, with no new list: a Response
        # made, two headers set and outgoing() took 41,051 -> 36,947 instructions, five
        # headers 69,183 -> 65,795 (valgrind, PYTHONHASHSEED=0, 3.11, 2026-12-07).
        for item in items:
            if item[0] == key:
                items = self._list = [item for item in items if item[0] != key]
                break
        items.append((key, value))

    def _set_indexed(self, key: str, value: str) -> None:
        """Set the lower-case ``key`` to ``value`` in a list long enough to be indexed."""
        # PERF: each headers[name] = value made the list again, and setdefault() went over
        # it: an app setting 1,000 headers of a response one by one took 22 ms, 2,000 took
        # 51 (setdefault() 26 and 142), now 1.4 and 3.2 (1.6 and 3.3; timeit, 2026-12-07).
        # A name set again is still moved last at the cost of a pass over the list, in C
        # when the name has one line: 1,000 names set twice each, 38 -> 4.7 ms.
        index = self._lines()
        found = index.get(key)
        items = self._list if found is None else self._without(key, found)
        items.append((key, value))
        index[key] = [value]
        self._microweb_index = (items, len(items), index)

    def _without(self, key: str, lines: list[str]) -> list[tuple[str, str]]:
        """Take the ``lines`` of the lower-case ``key`` out of the list; return the list."""
        items = self._list
        if len(lines) == 1:
            # PERF: found and taken out in C, the scan stopping at the line, or at once when it
            # is the last: 2,000 one-line names deleted one by one, each with a Python pass
            # over the list, took 298 ms from the first, 220 from the last, 268 in a random
            # order; now 2.2, 2.6 and 26 (timeit, 2026-12-07, review303). In a random order,
            # the scans in C still add up as the square of the lines: 4,000 took 103 ms.
            # NOTE: left so (review319; bench/headers_deletes.py: 4.7 us a name at 1,000 lines,
            # 43 at 8,000). The list is what the drivers send and copy as it is: a line known
            # by its place would need every later place moved at each delete, and one left
            # out lazily, every reader of the list to compact it first. Request headers stop
            # at max_headers (1,000 lines), and only an app's own code deletes thousands.
            # NOTE: the name's one line: equal is it.
            line = (key, lines[0])
            if items[-1] == line:
                items.pop()
            else:
                items.remove(line)
            return items
        items = self._list = [item for item in items if item[0] != key]
        return items

    def setdefault(self, name: str, value: str) -> str:
        """Set ``name`` to ``value`` unless present; return the value in force."""
        found = self.get(name)
        if found is None:
            self[name] = value
            return value
        return found

    def add(self, name: str, value: str) -> None:
        """Append a value, keeping the ones already there (for ``Set-Cookie``, say).

        Raises:
            ValueError: As ``check_header`` does, or if ``name`` is a header that takes one
                value (``Content-Type``, ``Location``, ``ETag``...) and has one already.
        """
        item = check_header(name, value)
        key, items = item[0], self._list
        if len(items) > INDEXED_FROM:
            index = self._lines()
            has_one = key in index
        else:
            index = None
            has_one = key in _SINGLE_VALUED and any(found == key for found, _ in items)
        if has_one and key in _SINGLE_VALUED:
            raise ValueError(
                f"header {name!r} takes one value and has one already; replace it with "
                f"headers[{name!r}] = value"
            )
        items.append(item)
        if index is not None:
            index.setdefault(key, []).append(item[1])
            self._microweb_index = (items, len(items), index)

    def __delitem__(self, name: str) -> None:
        key, items = name.lower(), self._list
        if len(items) > INDEXED_FROM:
            index = self._lines()
            found = index.pop(key, None)
            if found is None:
                raise KeyError(name)
            items = self._without(key, found)
            self._microweb_index = (items, len(items), index)
            return
        kept = [item for item in items if item[0] != key]
        if len(kept) == len(items):
            raise KeyError(name)
        self._list = kept

    def pop(self, name: str, default: str | None = None) -> str | None:
        """Remove every value of ``name``; return the one ``get()`` gave, or ``default``."""
        value = self.get(name, default)
        if name.lower() in self:
            del self[name]
        return value

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        key, items = name.lower(), self._list
        if len(items) > INDEXED_FROM:
            return key in self._lines()
        return any(item_name == key for item_name, _ in items)

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys(name for name, _ in self._list))

    def __len__(self) -> int:
        return len(self._list)

    def keys(self) -> list[str]:
        """Return the distinct names, in order of first appearance."""
        return list(self)

    def items(self) -> list[tuple[str, str]]:
        """Return every ``(name, value)`` pair in order (names in lower case)."""
        return list(self._list)

    multi_items = items

    def copy(self: H) -> H:
        """Return headers of the same class with lines of their own (a line added to one is
        not in the other), and a subclass's own attributes."""
        # NOTE: copy.copy() shared the list: a line add()ed to the copy was in both.
        twin = object.__new__(type(self))
        if hasattr(self, "__dict__"):
            twin.__dict__.update(self.__dict__)
        # NOTE: and a subclass's slots: an attribute kept in one was lost (deepcopy kept it).
        for name, value in self._own_slots().items():
            setattr(twin, name, value)
        twin._list = self._list.copy()
        return twin

    __copy__ = copy

    def _own_slots(self) -> dict[str, Any]:
        """The slots of a subclass's own that are set, by name."""
        kind = type(self)
        copied = self._copied_slots
        if copied[0] is not kind:
            copied = kind._copied_slots = (kind, tuple(slot_names(kind)))
        return {name: getattr(self, name) for name in copied[1] if hasattr(self, name)}

    def __getstate__(self) -> tuple[dict[str, Any] | None, dict[str, Any]]:
        # NOTE: pickle and deepcopy took the index too (every name's values, the lines again);
        # they take the lines, a subclass's attributes and its own slots (review319).
        slots = self._own_slots()
        slots["_list"] = self._list
        return getattr(self, "__dict__", None) or None, slots

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Headers):
            return NotImplemented
        return sorted(self._list) == sorted(other._list)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Headers({self._list!r})"


def trusted_headers(items: list[tuple[str, str]], kind: type[H] = Headers) -> H:  # type: ignore[assignment]
    """Return ``Headers`` (or the subclass ``kind``) holding ``items`` as they are: names
    already lower case, values checked.

    For the framework's own headers and those a server parsed; not for an app's.
    """
    # PERF: 0.08 us, where Headers(_trusted=items), a keyword argument, cost 0.26.
    headers = object.__new__(kind)
    headers._list = items
    return headers
