"""A checkpoint of an object's registries, put back as they were when a change fails halfway."""

from __future__ import annotations

from collections.abc import Iterable
from types import SimpleNamespace
from typing import Any


class Checkpoint:
    """Shallow copies of some attributes of ``owner``: lists, dicts (of lists), namespaces.

    ``restore()`` puts each attribute back, the same object with its old contents, so that
    whatever holds a reference to it (a route table holds the app's converters) sees the
    old contents too. Values in the containers are shared, not copied.
    """

    __slots__ = ("_owner", "_saved")

    def __init__(self, owner: object, names: Iterable[str]) -> None:
        self._owner = owner
        self._saved = {name: _saved(getattr(owner, name)) for name in names}

    def restore(self) -> None:
        """Put every attribute back, in place, as it was when the checkpoint was taken."""
        for name, (original, contents) in self._saved.items():
            setattr(self._owner, name, original)
            if isinstance(original, list):
                original[:] = contents
            elif isinstance(original, dict):
                original.clear()
                original.update(_copied(contents))
            elif isinstance(original, SimpleNamespace):
                vars(original).clear()
                vars(original).update(contents)


def _saved(value: Any) -> tuple[Any, Any]:
    if isinstance(value, list):
        return value, list(value)
    if isinstance(value, dict):
        return value, _copied(value)
    if isinstance(value, SimpleNamespace):
        return value, dict(vars(value))
    return value, value


def _copied(mapping: dict[Any, Any]) -> dict[Any, Any]:
    # NOTE: the app's dicts of lists (routes by name, flows by plugin) grow in place.
    return {key: list(v) if isinstance(v, list) else v for key, v in mapping.items()}
