"""Route lookup: ``RouteTable``, and the startup check that refuses routes never reached (the
search it runs is its base's, ``_route_reach.RouteReach``).

Lookup cost does not grow with the number of routes: static paths are one dict lookup, and dynamic
templates live in a trie keyed by path segment, so a request walks only the branches its own
segments select. A parameter's branch is keyed by its converter alone: the names of a template's
parameters matter only to bind the values, so ``/{a}/x`` and ``/{b}/y`` share one branch.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from typing import Any, Generic, TypeVar

from ._route_clashes import refuse_shadowed, refuse_twice
from ._route_nodes import MethodMap, Node, ancestry, method_maps_below
from ._route_reach import RouteReach
from ._route_templates import Converter, Param
from ._routing import Route

V = TypeVar("V")

_NO_METHODS: AbstractSet[str] = frozenset()

# PERF: a node of this many parameters or more is searched through its ahead map: a 404 among
# 2,000 routes /{a1}/t1 ... /{a2000}/t2000 (a name each) tried every branch, 1,045 -> 3.1 us
# (timeit, 2026-12-05). Below it, the map gains little: four, /u/{a0}/t0 ... /u/{a3}/t3,
# a 404 3.9 -> 3.4 us through it, the last route 4.9 -> 5.2 us.
_MANY = 8


# NOTE: what a lookup converted, by the segment's index and the converter's id: the value, or
# _REFUSED where the converter raised ValueError. The search asks it before a converter, so that
# no segment is converted twice by one converter in a lookup, nor in the lookups of one path in
# the HTTP and WebSocket tables (whose converters are the app's, the same objects).
Conversions = dict[tuple[int, int], Any]
_REFUSED = object()


class RouteTable(RouteReach, Generic[V]):
    """Routes of one kind (HTTP or WebSocket), ready for lookup.

    Each route comes with a value, which ``lookup`` returns: the route itself in an app's
    registry, the compiled endpoint in a plan.
    """

    def __init__(self, converters: Mapping[str, Converter]) -> None:
        self._converters = converters
        # NOTE: the routes without parameters, by template then method; read by Plan.match
        # first, and by lookup().
        self.static: dict[str, MethodMap] = {}
        self._root = Node()
        # NOTE: how many routes were added: none, and a lookup can find nothing.
        self.size = 0
        # NOTE: whether a template with parameters takes HEAD itself: without one, a HEAD is
        # looked up as a GET at once.
        self.template_heads = False
        # NOTE: whether each custom converter takes a dot segment, by id: asked once.
        self._dots: dict[int, bool] = {}
        # NOTE: the most segments of a template with parameters: a path is split no further.
        self._depth = 0

    def add(self, route: Route, value: V) -> None:
        """Add ``route``, for which ``lookup`` returns ``value``.

        Raises:
            ValueError: If the same method and template are already registered, or a converter is
                unknown.
        """
        # NOTE: checked before a node is made: a refused route's empty branch, first among the
        # parameters of its segment, took the place in the lookup of the next route to use it.
        self.check(route)
        methods = self._method_map(route)
        entry = (route, value, route.param_names)
        for method in route.methods:
            methods[method] = entry
        self.size += 1
        if route.param_names:
            self._depth = max(self._depth, len(route.segments))
        if "HEAD" in route.methods and route.param_names:
            self.template_heads = True

    def check(self, route: Route) -> None:
        """Raise as ``add`` would for ``route``, adding nothing (no node either).

        Raises:
            ValueError: If the same method and template are already registered, or a converter is
                unknown.
        """
        for segment in route.segments:
            if isinstance(segment, Param):
                self._converter(segment, route.template)
        known = self._known_map(route) or {}
        refuse_shadowed(known, route)
        refuse_twice(known, route)

    def refuse_unreached(self) -> None:
        """Raise ``RouteClash`` for a route that a route found before it in every lookup takes
        all the requests of, for one of its methods.

        Converters are tried in the order routes first used them, so ``/users/{name}`` added before
        ``/users/{id:int}`` takes every request of the ``int`` route: a ``str`` parameter takes
        whatever any one-segment converter takes. Checked once every route is in, since a route
        added later can come first in the lookup (a node of its template made before).

        Raises:
            RouteClash: For the first such route, naming the one that takes its requests.
        """
        for route in self:
            if any(isinstance(segment, Param) for segment in route.segments):
                self._refuse_found_before(route)  # NOTE: a static route is found by its path.

    def refuse_unreached_by(self, route: Route) -> None:
        """Raise ``RouteClash`` as ``refuse_unreached`` would once ``route`` is added, adding
        nothing: for ``route``, or for a route it would take every request of.

        For a route added once ``refuse_unreached`` ran (by a startup hook, say), when the
        routes already in were checked.
        """
        self._refuse_found_before(route)
        if not route.param_names:
            return  # NOTE: looked up first, by its path alone: no path but its own.
        # NOTE: a route added last can still come first: where its parameter's branch was
        # made before another's, it is tried before every route of that later branch.
        alone = RouteTable[None](self._converters)
        alone._dots = self._dots  # NOTE: a custom converter is asked about dots once.
        alone.add(route, None)
        node, mine = self._root, alone._root
        for position, segment in enumerate(route.segments):
            if isinstance(segment, str):
                found, mine = node.static.get(segment), mine.static[segment]
            else:
                converter = self._converter(segment, route.template)
                if converter.name == "path" and position == len(route.segments) - 1:
                    return  # NOTE: tried after the node's parameters, as in _first_over.
                found = node.named.get(id(converter))
                if found is not None:
                    mine = mine.named[id(converter)]
                    rest = route.segments[position + 1 :]
                    for _, later in node.params[found.position + 1 :]:
                        alone._refuse_covered(later, mine, converter, position, rest)
            if found is None:
                return  # NOTE: a branch of its own from here on: tried after every other.
            node = found

    def _method_map(self, route: Route) -> MethodMap:
        if not any(isinstance(s, Param) for s in route.segments):
            return self.static.setdefault(route.template, {})
        node = self._root
        for position, segment in enumerate(route.segments):
            if isinstance(segment, str):
                node = node.static_child(segment)
                continue
            converter = self._converter(segment, route.template)
            if converter.name == "path" and position == len(route.segments) - 1:
                return node.catch_all_methods(converter)
            node = node.child(converter)
        return node.own_methods()

    def _known_map(self, route: Route) -> MethodMap | None:
        """``_method_map`` of a template registered already; ``None`` where there is none."""
        if not any(isinstance(s, Param) for s in route.segments):
            return self.static.get(route.template)
        node = self._root
        for position, segment in enumerate(route.segments):
            if isinstance(segment, str):
                found = node.static.get(segment)
            else:
                converter = self._converter(segment, route.template)
                if converter.name == "path" and position == len(route.segments) - 1:
                    return node.known_catch_all(converter)
                found = node.known_child(converter)
            if found is None:
                return None
            node = found
        return node.methods

    def lookup(
        self, method: str, path: str, conversions: Conversions | None = None
    ) -> tuple[V | None, dict[str, Any], AbstractSet[str]]:
        """Find the route for ``method`` and ``path``; ``conversions`` is what another table's
        lookup of it converted (see ``lookup_templates``), which this one does not convert again.

        Returns:
            ``(value, params, allowed)``: the route's value and its converted parameters, or
            ``None`` with the methods of every template that matches the path (empty: no
            template does).
        """
        methods = self.static.get(path)
        if methods is not None:
            found = methods.get(method)
            if found is not None:
                return found[1], {}, _NO_METHODS
        root = self._root
        if not (root.static or root.params or root.catch_all):
            return None, {}, methods.keys() if methods else _NO_METHODS  # NOTE: no template.
        if conversions is not None:
            # NOTE: another table's search of this path ran, and found no route: the search,
            # which asks what was converted before it converts, in the first way's order too.
            # PERF: with nothing converted too: the first way, which a miss (a 404's) follows
            # with the search, walked the table twice; a 404 in an app with a WebSocket route
            # 42,500 -> 32,100 instructions (callgrind, GET /nowhere/x, 2026-12-06).
            return self._searched(method, path, self._segments(path), conversions, None)
        value, params, allowed, _ = self.lookup_templates(method, path)
        return value, params, allowed

    def lookup_keeping(
        self, method: str, path: str
    ) -> tuple[V | None, dict[str, Any], AbstractSet[str], Conversions | None]:
        """``lookup()``, with what its search converted as ``lookup_templates()`` gives it."""
        methods = self.static.get(path)
        found = methods.get(method) if methods is not None else None
        if found is not None:
            return found[1], {}, _NO_METHODS, None
        return self.lookup_templates(method, path)

    def lookup_templates(
        self, method: str, path: str, instead: str | None = None
    ) -> tuple[V | None, dict[str, Any], AbstractSet[str], Conversions | None]:
        """``lookup()`` for a caller that found no route for ``method`` in ``static`` already:
        the templates with parameters are searched; ``allowed`` counts every template.

        ``instead`` is a method whose route answers where none takes ``method`` (``GET`` for a
        ``HEAD``): the path's own, then the first template's, as ``lookup(instead, path)``
        would find it.

        Returns:
            ``lookup()``'s three, and what the search converted, for another table's
            ``lookup()`` of the path (see ``Conversions``): ``None`` where no search ran (the
            first way took the path, or there is no template).
        """
        root = self._root
        if not (root.static or root.params or root.catch_all):
            # PERF: no template with parameters (an app of static routes): nothing to search,
            # for the 404 of a scanner's path: 0.9 -> 0.2 us (timeit, 2026-12-05).
            methods = self.static.get(path)
            found = methods.get(instead) if methods and instead else None
            if found is not None:
                return found[1], {}, _NO_METHODS, None
            return None, {}, methods.keys() if methods else _NO_METHODS, None
        segments = self._segments(path)
        # PERF: first the way a search tries first at each segment (the static child, else the
        # first parameter that converts), in a loop: the last of 1,000 routes in 0.92 us
        # instead of 1.29 with one recursive call per segment; inline here, 0.71 -> 0.66 us.
        node = root
        values: list[Any] = []
        refused: list[Node] | None = None
        for index, segment in enumerate(segments):
            child = node.static.get(segment)
            if child is None and segment:
                converting = node.converting
                if len(converting) >= _MANY:
                    # NOTE: as the search below tries them: every one in turn, until one took
                    # the segment, was each converter among 2,000 for a 404 (2.9 ms).
                    converting = node.converting_ahead(segments, index)
                for to_python, candidate in converting:
                    try:
                        values.append(to_python(segment))
                    except ValueError:
                        # NOTE: kept for the search below, which calls no converter twice.
                        if refused is None:
                            refused = []
                        refused.append(candidate)
                        continue
                    child = candidate
                    break
            if child is None:
                break
            node = child
        else:
            methods = node.methods
            found = methods.get(method) if methods else None
            if found is not None:
                names = found[2]
                if len(names) == 1:
                    # PERF: a route of one parameter (the benchmark's), bound without zip():
                    # dict(zip()) 0.81 us, this 0.09 (timeit, loaded machine, 2026-12-06).
                    return found[1], {names[0]: values[0]}, _NO_METHODS, None
                return found[1], dict(zip(names, values, strict=True)), _NO_METHODS, None
        converted = _first_conversions(node, values, refused or ())
        value, params, allowed = self._searched(method, path, segments, converted, instead)
        return value, params, allowed, converted

    def _segments(self, path: str) -> list[str]:
        """The segments of ``path`` as far as a template has them; the rest, when there is
        more, is one last item, which no template's segment matches and a ``{name:path}``
        at the end takes joined as the segments it holds would be."""
        # PERF: split whole, a 256 KiB path of "/ab/ab/..." made 87,000 str, 5.4 MB (21 bytes
        # a byte), for a 404 among templates of a few segments (hostile5).
        return path[1:].split("/", self._depth)

    def _searched(
        self,
        method: str,
        path: str,
        segments: list[str],
        conversions: Conversions,
        instead: str | None,
    ) -> tuple[V | None, dict[str, Any], AbstractSet[str]]:
        """Search every way, in the first way's order: the first match with ``method`` wins,
        else the methods of those that match are collected (and the first with ``instead``
        kept)."""
        allowed: set[str] = set()
        other: tuple[Route, Any, tuple[str, ...]] | None = None
        other_values: list[Any] = []
        for methods, values in self._matches(self._root, segments, 0, [], conversions):
            found = methods.get(method)
            if found is not None:
                return found[1], dict(zip(found[2], values, strict=True)), _NO_METHODS
            if other is None and instead is not None and instead in methods:
                other, other_values = methods[instead], values
            allowed.update(methods)
        if methods_static := self.static.get(path):
            allowed.update(methods_static)
            if instead is not None and instead in methods_static:
                return methods_static[instead][1], {}, _NO_METHODS
        if other is not None:
            return other[1], dict(zip(other[2], other_values, strict=True)), _NO_METHODS
        return None, {}, allowed

    def _matches(
        self,
        node: Node,
        segments: list[str],
        index: int,
        values: list[Any],
        conversions: Conversions | None = None,
    ) -> Iterator[tuple[MethodMap, list[Any]]]:
        """Every match below ``node`` of ``segments`` from ``index``, in the lookup's order:
        each route's method map with the values of its parameters, in order."""
        if conversions is None:
            conversions = {}
        if index == len(segments):
            if node.methods:
                yield node.methods, values
            return
        segment = segments[index]
        child = node.static.get(segment)
        if child is not None:
            yield from self._matches(child, segments, index + 1, values, conversions)
        if segment and node.params:
            params_ahead = node.params
            if len(params_ahead) >= _MANY:
                params_ahead = node.ahead_of(segments, index)
            for converter, child in params_ahead:
                value = _converted(conversions, index, converter, segment)
                if value is not _REFUSED:
                    yield from self._matches(
                        child, segments, index + 1, [*values, value], conversions
                    )
        if node.catch_all:
            # NOTE: the rest of the path is joined only where a {name:path} may take it.
            yield from _rest_matches(node, "/".join(segments[index:]), values)

    def __iter__(self) -> Iterator[Route]:
        seen: dict[int, Route] = {}
        for methods in self._all_method_maps():
            for route, *_ in methods.values():
                seen.setdefault(id(route), route)
        return iter(seen.values())

    def _all_method_maps(self) -> Iterator[MethodMap]:
        yield from self.static.values()
        yield from method_maps_below(self._root)


def _first_conversions(node: Node, values: list[Any], refused: Sequence[Node]) -> Conversions:
    """What the lookup's first way converted, as the search asks it: the ``values`` of the
    param nodes on the way to ``node``, and the param nodes whose converter ``refused``."""
    conversions: Conversions = {}
    taken = [n for n in ancestry(node) if n.converter is not None]
    for step, value in zip(taken, values, strict=True):
        conversions[step.depth - 1, id(step.converter)] = value
    for step in refused:
        conversions[step.depth - 1, id(step.converter)] = _REFUSED
    return conversions


def _converted(conversions: Conversions, index: int, converter: Converter, segment: str) -> Any:
    """``converter``'s value for ``segment`` (at ``index``), or ``_REFUSED``: converted once
    per lookup, whichever branches ask."""
    key = (index, id(converter))
    value = conversions.get(key, conversions)
    if value is conversions:
        try:
            value = converter.to_python(segment)
        except ValueError:
            value = _REFUSED
        conversions[key] = value
    return value


def _rest_matches(
    node: Node, rest: str, values: list[Any]
) -> Iterator[tuple[MethodMap, list[Any]]]:
    """The matches of ``node``'s ``{name:path}`` parameters, which take ``rest``."""
    if rest:
        for converter, methods in node.catch_all:
            try:
                value = converter.to_python(rest)
            except ValueError:
                continue
            yield methods, [*values, value]
