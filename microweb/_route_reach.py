"""The reach of a route table's routes: which route a lookup finds first for every request
that another matches, for ``RouteTable``'s refusal of a route never reached.

``RouteReach`` is ``RouteTable``'s base: the search of its trie for a route that takes all the
requests of another, and the converter a template's parameter names.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ._route_clashes import unreached
from ._route_nodes import Node, following, maps_along
from ._route_templates import BUILTIN_CONVERTERS, PLAIN_SEGMENT_NAMES, Converter, Param, Segment
from ._routing import Route


class RouteReach:
    """The reach checks of ``RouteTable``, over the attributes it sets."""

    _converters: Mapping[str, Converter]
    _root: Node
    _dots: dict[int, bool]

    def _refuse_found_before(self, route: Route) -> None:
        for method in sorted(route.methods):
            first = self._first_over(route, method)
            if first is not None:
                raise unreached(method, route, first)

    def _refuse_covered(
        self,
        branch: Node,
        mine: Node,
        converter: Converter,
        position: int,
        rest: Sequence[Segment],
    ) -> None:
        """Raise ``RouteClash`` for a route of ``branch`` whose every request this table's one
        route (its parameter at ``position`` of ``converter``, then ``mine``, ``rest``) takes
        first."""
        # PERF: only the routes whose literals are the one route's where it has literals: all of
        # the branch's took a hook's 1,000 routes of another literal 4 s (1,000 routes there).
        for methods in maps_along(branch, rest):
            for method, (later, *_) in methods.items():
                segment = later.segments[position]
                if not isinstance(segment, Param):
                    continue  # NOTE: none in a parameter's branch; for the type checker.
                if not self._covers(converter, segment, self._converter(segment, "")):
                    continue
                first = self._covering(mine, later.segments[position + 1 :], method)
                if first is not None:
                    raise unreached(method, later, first, would=True)

    def _first_over(self, route: Route, method: str) -> Route | None:
        """The route the lookup finds for ``method`` before ``route``, for every request that
        ``route`` matches; ``None`` where some request reaches ``route``."""
        node, last = self._root, len(route.segments) - 1
        for position, segment in enumerate(route.segments):
            if isinstance(segment, str):
                found = node.static.get(segment)
                if found is None:
                    return None  # NOTE: a route not added yet, a literal of its own: first.
                node = found
                continue
            converter = self._converter(segment, route.template)
            if converter.name == "path" and position == last:
                # NOTE: a {name:path} at the end is tried after the node's parameters, which
                # take one segment only; one of the same shape is refused when it is added.
                return None
            rest = route.segments[position + 1 :]
            own = node.named.get(id(converter))
            # NOTE: a route not added yet may make a branch, after every other.
            ending = own.position if own is not None else len(node.params)
            for before in node.positions_ahead(following(rest)):
                if before >= ending:
                    break  # NOTE: the route's own branch: the ones after it come later.
                other, child = node.params[before]
                if self._covers(other, segment, converter):
                    first = self._covering(child, rest, method)
                    if first is not None:
                        return first
            if own is None:
                return None
            node = own
        return None

    def _covering(self, node: Node, segments: Sequence[Segment], method: str) -> Route | None:
        """A route in ``node``'s branch that matches, for ``method``, every path that
        ``segments`` match (one branch of it; ``None`` where none is found so)."""
        if not segments:
            found = node.methods.get(method) if node.methods else None
            return found[0] if found is not None else None
        segment, rest = segments[0], segments[1:]
        if isinstance(segment, str):
            child = node.static.get(segment)
            first = self._covering(child, rest, method) if child is not None else None
            if first is not None or not (segment or rest):
                return first  # NOTE: an empty last segment is nobody's: no path's end.
            converter = None
        else:
            converter = self._converter(segment, "")
        if segment and (converter is None or converter.name != "path" or rest):
            # NOTE: an empty segment is no parameter's.
            for other, child in node.params:
                if self._covers(other, segment, converter):
                    first = self._covering(child, rest, method)
                    if first is not None:
                        return first
        if any(self._takes_dots(self._converter(s, "")) for s in segments if isinstance(s, Param)):
            return None  # NOTE: a {name:path} takes no dot segment either.
        for _, methods in node.catch_all:
            # NOTE: a {name:path} takes whatever is left, one segment or more, an empty one
            # with those after it ("/a//x" is "/x" to one after "/a").
            found = methods.get(method)
            if found is not None:
                return found[0]
        return None

    def _covers(self, other: Converter, segment: Segment, converter: Converter | None) -> bool:
        """Tell whether a parameter of ``other`` takes every segment that ``segment`` (of
        ``converter``, ``None`` for a literal) matches, for certain.

        A ``str`` parameter takes whatever another converter takes but a dot segment, and a
        built-in converter the literals it converts. Another relation is no certain one:
        ``float`` takes no integer past a float's range (1.8e308), which ``int`` does; and
        what a custom converter takes is unknown.
        """
        if other is converter:
            return True
        if other is self._converters["str"]:
            return not self._takes_dots(converter)
        if converter is not None or BUILTIN_CONVERTERS.get(other.name) is not other:
            return False
        try:
            other.to_python(str(segment))
        except ValueError:
            return False
        return True

    def _takes_dots(self, converter: Converter | None) -> bool:
        """Tell whether ``converter`` (``None`` for a literal) may take a ``.`` or ``..``
        segment, which no literal or built-in converter does.

        A client that sends one as it is (``curl --path-as-is``, or ``%2E%2E``) reaches the
        converter: Waitress and Uvicorn resolve no dot segment away.
        """
        if converter is None or BUILTIN_CONVERTERS.get(converter.name) is converter:
            return False
        takes = self._dots.get(id(converter))
        if takes is None:
            # NOTE: both, in one order: any() over the set stopped at the first taken, which
            # the hash seed chose, so a converter with effects saw '.' in some runs, '..' in
            # others, where the docs say it is asked about each once.
            answers = [_takes(converter, segment) for segment in (".", "..")]
            takes = self._dots[id(converter)] = any(answers)
        return takes

    def _converter(self, param: Param, template: str) -> Converter:
        try:
            return self._converters[param.converter]
        except KeyError:
            known = ", ".join(sorted(self._converters))
            advice = "register it with app.add_converter()"
            if param.converter in PLAIN_SEGMENT_NAMES:
                # NOTE: Flask's <string:name>, written in braces, is our plain {name}.
                advice = f"a segment of any text is written {{{param.name}}}, with no converter"
            raise ValueError(
                f"route template {template!r} uses unknown converter {param.converter!r} "
                f"(known: {known}); {advice}"
            ) from None


def _takes(converter: Converter, segment: str) -> bool:
    """Tell whether a request whose segment is ``segment`` reaches ``converter``'s route:
    only a ``ValueError`` is no match; another exception is the converter's answer (an
    ``HTTPError`` it chose, or its bug's 500), one that raises when it is called at startup
    (its database not open yet) included."""
    try:
        converter.to_python(segment)
    except ValueError:
        return False
    except Exception:
        return True
    return True
