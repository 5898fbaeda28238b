"""The trie that a ``RouteTable``'s templates with parameters live in: a node per segment."""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from ._route_templates import Converter, Segment
from ._routing import Route

# NOTE: each method of a template maps to its route, the value the table holds for it, and
# the names of its parameters in order (bound to the values a lookup converted).
MethodMap = dict[str, tuple[Route, Any, tuple[str, ...]]]

# NOTE: keys of Node.ahead that no segment can be, since none holds a "/".
_GOES_ON = "/"
_ENDS = "//"


class Node:
    __slots__ = (
        "ahead",
        "catch_all",
        "converter",
        "converting",
        "depth",
        "methods",
        "named",
        "params",
        "parent",
        "position",
        "static",
    )

    def __init__(
        self,
        parent: Node | None = None,
        converter: Converter | None = None,
        position: int = -1,
    ) -> None:
        self.static: dict[str, Node] = {}
        self.params: list[tuple[Converter, Node]] = []
        # NOTE: params with each converter's to_python, for the lookup's first way.
        self.converting: list[tuple[Callable[[str], Any], Node]] = []
        self.catch_all: list[tuple[Converter, MethodMap]] = []
        self.methods: MethodMap | None = None
        # NOTE: the params' nodes by converter (id); a node's parent and how many segments
        # lead to it; for a param's node, its converter and its position among the parent's.
        self.named: dict[int, Node] = {}
        self.parent = parent
        self.depth: int = parent.depth + 1 if parent is not None else 0
        self.converter = converter
        self.position = position
        # NOTE: which params (by position, in order) have a node that goes on with a literal
        # (by its text), with a parameter (_GOES_ON), or where a route ends (_ENDS): the only
        # ones a path can match through, its next segment known.
        self.ahead: dict[str, list[int]] = {}

    def known_child(self, converter: Converter) -> Node | None:
        return self.named.get(id(converter))

    def known_catch_all(self, converter: Converter) -> MethodMap | None:
        for known, methods in self.catch_all:
            if known is converter:
                return methods
        return None

    def child(self, converter: Converter) -> Node:
        node = self.known_child(converter)
        if node is not None:
            return node
        if not (self.params or self.catch_all):
            self.tell_up(_GOES_ON)
        node = self.named[id(converter)] = Node(self, converter, len(self.params))
        self.params.append((converter, node))
        self.converting.append((converter.to_python, node))
        return node

    def static_child(self, segment: str) -> Node:
        node = self.static.get(segment)
        if node is None:
            self.tell_up(segment)
            node = self.static[segment] = Node(self)
        return node

    def catch_all_methods(self, converter: Converter) -> MethodMap:
        methods = self.known_catch_all(converter)
        if methods is None:
            if not (self.params or self.catch_all):
                self.tell_up(_GOES_ON)
            methods = {}
            self.catch_all.append((converter, methods))
        return methods

    def own_methods(self) -> MethodMap:
        if self.methods is None:
            self.tell_up(_ENDS)
            self.methods = {}
        return self.methods

    def tell_up(self, key: str) -> None:
        """Note in the parent's ``ahead`` that this param's node now has ``key``."""
        if self.parent is not None and self.converter is not None:
            bisect.insort(self.parent.ahead.setdefault(key, []), self.position)

    def positions_ahead(self, following: str | None) -> Sequence[int]:
        """The positions (in order) of the params whose node may go on with ``following``:
        a literal segment, a parameter (``_GOES_ON``), or none (``None``: ends there)."""
        if following is None:
            return self.ahead.get(_ENDS, _NO_POSITIONS)
        positions = self.ahead.get(following, _NO_POSITIONS)
        going = self.ahead.get(_GOES_ON, _NO_POSITIONS)
        if not going or positions is going:
            return positions
        return sorted({*positions, *going}) if positions else going

    def ahead_of(self, segments: list[str], index: int) -> list[tuple[Converter, Node]]:
        """The params (in order) through which a path of ``segments`` may match, at
        ``index``: those whose node goes on with its next segment, or ends with the path."""
        return [self.params[position] for position in self._positions(segments, index)]

    def converting_ahead(
        self, segments: list[str], index: int
    ) -> list[tuple[Callable[[str], Any], Node]]:
        """``ahead_of()`` as ``converting`` holds them, for the lookup's first way."""
        return [self.converting[position] for position in self._positions(segments, index)]

    def _positions(self, segments: list[str], index: int) -> Sequence[int]:
        return self.positions_ahead(segments[index + 1] if index + 1 < len(segments) else None)


_NO_POSITIONS: list[int] = []


def method_maps_below(node: Node) -> Iterator[MethodMap]:
    """The method maps of ``node`` and of every node below it."""
    stack = [node]
    while stack:
        node = stack.pop()
        if node.methods:
            yield node.methods
        for _, methods in node.catch_all:
            yield methods
        stack.extend(node.static.values())
        stack.extend(child for _, child in node.params)


def maps_along(node: Node, segments: Sequence[Segment]) -> Iterator[MethodMap]:
    """The method maps below ``node`` of the templates that ``segments`` may take every path
    of: theirs where ``segments`` have a literal, any where a parameter (all below a
    ``{name:path}`` that ends them); more than those taken, never fewer."""
    if not segments:
        if node.methods:
            yield node.methods
        return
    segment, rest = segments[0], segments[1:]
    if isinstance(segment, str):
        child = node.static.get(segment)
        if child is not None:
            yield from maps_along(child, rest)
        return
    if not rest and segment.converter == "path":
        yield from method_maps_below(node)  # NOTE: it takes whatever is left.
        return
    for child in (*node.static.values(), *(child for _, child in node.params)):
        yield from maps_along(child, rest)


def following(segments: Sequence[Segment]) -> str | None:
    """What comes after a template's segment, as ``Node.positions_ahead`` takes it."""
    if not segments:
        return None
    return segments[0] if isinstance(segments[0], str) else _GOES_ON


def ancestry(node: Node) -> list[Node]:
    """``node`` and the nodes above it, the root's child first (the root left out)."""
    chain = []
    while node.parent is not None:
        chain.append(node)
        node = node.parent
    return chain[::-1]
