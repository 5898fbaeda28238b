"""The JSON a session is kept as: written canonically, read back strictly, and what it cannot
hold refused by where it is in the session."""

from __future__ import annotations

import json
import math
import sys
from typing import Any

# NOTE: how many lists and dicts deep a session nests, itself counted. Nested some 970 deep
# (less on a deeper stack), json raised a bare RecursionError at save, with no word of the
# session; a limit of its own says where, the same on every stack. A cookie of 4 KiB nests
# no deeper than 2,000.
MAX_SESSION_DEPTH = 100


def encode_session(session: dict[str, Any]) -> str:
    """Return the canonical JSON of ``session``, the form compared to see changes.

    Raises:
        TypeError: If a value cannot be stored as JSON.
        ValueError: If a float is NaN or infinite, or an int has more digits than Python
            writes (``sys.get_int_max_str_digits()``).
    """
    # NOTE: json writes NaN and Infinity by default, which are no JSON (RFC 8259 6).
    return json.dumps(
        session, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def decode_session(data: bytes) -> Any:
    """Return the JSON ``data`` holds.

    Raises:
        ValueError: If it is no JSON, or holds ``NaN``, ``Infinity`` or a float out of range.
        RecursionError: If it nests deeper than Python's recursion limit.
    """
    # NOTE: json reads NaN, Infinity and 1e999 (inf), which encode_session() refuses: a
    # session that held one could not be compared nor written back (see TRAPS.md 16, 25).
    return json.loads(data, parse_constant=_no_constant, parse_float=_finite_float)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is no JSON number")


def _finite_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(f"{text} is out of a float's range")
    return number


def nests_too_deep(session: dict[str, Any], text: str) -> bool:
    """Tell whether ``session``, whose JSON is ``text``, nests lists and dicts more than
    ``MAX_SESSION_DEPTH`` deep."""
    # PERF: the walk took 77 us for a session of 1 KiB, on every request: fewer brackets than
    # the limit (those in strings counted too) nest no deeper, in 1 us.
    if text.count("[") + text.count("{") <= MAX_SESSION_DEPTH:
        return False
    # PERF: level by level, with nothing made for each list or dict but its place in the next
    # level: _too_deep()'s entries, which carry the keys for the error, took 440 us a request
    # for a cart of 450 small dicts (3.6 KB of JSON, on every request that sent it), 6 times
    # its json.loads; 187 us now (best of 9 timeit runs, shared 2-CPU VM, 2026-12-06).
    level: list[Any] = [session]
    for _ in range(MAX_SESSION_DEPTH):
        level = [
            value
            for item in level
            for value in (item.values() if isinstance(item, dict) else item)
            if isinstance(value, (dict, list, tuple))
        ]
        if not level:
            return False
    return True


def refuse_too_deep(session: dict[str, Any]) -> None:
    """Raise ``ValueError`` if ``session`` nests too deep, naming where (see ``nests_too_deep``)."""
    keys = _too_deep(session)
    if keys is not None:
        where = "".join(f"[{key!r}]" for key in keys[:3])
        raise ValueError(
            f"request.session{where}... nests lists and dicts more than {MAX_SESSION_DEPTH} "
            "deep, which a session does not keep: store a flatter value"
        )


def _too_deep(session: dict[str, Any]) -> list[Any] | None:
    """Return the keys down to a list or dict nested too deep, or ``None``."""
    # NOTE: each entry carries the key it is under and its parent's entry, so that the keys
    # are put together only for the one that is too deep.
    stack: list[tuple[Any, int, Any, Any]] = [(session, 1, None, None)]
    while stack:
        entry = stack.pop()
        item, depth = entry[0], entry[1]
        if depth > MAX_SESSION_DEPTH:
            keys = []
            while entry[3] is not None:
                keys.append(entry[2])
                entry = entry[3]
            return keys[::-1]
        pairs = item.items() if isinstance(item, dict) else enumerate(item)
        stack.extend(
            (value, depth + 1, key, entry)
            for key, value in pairs
            if isinstance(value, (dict, list, tuple))
        )
    return None


def keys_are_str(session: dict[str, Any]) -> bool:
    """Tell whether every dict in ``session``, which ``encode_session()`` wrote, has ``str``
    keys only: json writes ``1``, ``1.5``, ``True`` and ``None`` keys as strings without a word.
    """
    # NOTE: what json wrote holds no cycle (json refuses one) and no value of another type.
    stack: list[Any] = [session]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, value in item.items():
                if not isinstance(key, str):
                    return False
                if isinstance(value, (dict, list, tuple)):
                    stack.append(value)
        else:
            stack.extend(value for value in item if isinstance(value, (dict, list, tuple)))
    return True


def refuse_unstorable(session: dict[str, Any]) -> None:
    """Raise for what JSON cannot hold in ``session``, named by where it is.

    ``TypeError`` for a key that is not ``str`` or a value of no JSON type, ``ValueError`` for
    a float JSON has no number for or an int Python will not write in full.

    NOTE: JSON turns ``1`` into ``"1"`` without a word (``session[1]`` came back as
    ``session["1"]``), and a dict mixing ``int`` and ``str`` keys failed to sort; json's own
    messages named neither the session nor the key.
    """
    stack: list[tuple[Any, str]] = [(session, "request.session")]
    # NOTE: a list or dict that holds itself is json's ValueError (a 500); walked without
    # knowing which were seen, it spun forever, on the event loop under ASGI.
    seen: set[int] = set()
    while stack:
        item, where = stack.pop()
        if isinstance(item, (dict, list, tuple)):
            if id(item) not in seen:
                seen.add(id(item))
                stack.extend(reversed(_members(item, where)))
        else:
            _refuse_value(item, where)


def _members(
    item: dict[Any, Any] | list[Any] | tuple[Any, ...], where: str
) -> list[tuple[Any, str]]:
    if not isinstance(item, dict):
        return [(value, f"{where}[{index}]") for index, value in enumerate(item)]
    for key in item:
        if not isinstance(key, str):
            raise TypeError(f"session keys must be str (JSON's), not {key!r}, in {where}")
    return [(value, f"{where}[{key!r}]") for key, value in item.items()]


def _refuse_value(value: Any, where: str) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(
            f"{where} is {value!r}, which JSON has no number for: store None, or a str"
        )
    if isinstance(value, int):
        try:
            int.__repr__(value)
        except ValueError:
            # NOTE: json's "Exceeds the limit (4300 digits) for integer string conversion"
            # named neither the session nor the key; hex() has no such limit.
            raise ValueError(
                f"{where} is an int of more than {sys.get_int_max_str_digits()} digits, "
                "which Python will not write as JSON: store hex(value), and read it back "
                "with int(text, 16)"
            ) from None
    elif not isinstance(value, (str, float, type(None))):
        # NOTE: json's "Object of type datetime is not JSON serializable" named neither the
        # session nor what to store; Flask's session takes a datetime, UUID or bytes.
        raise TypeError(
            "request.session holds JSON values only (dict, list, str, int, float, bool, None): "
            f"{where} is a value of type {type(value).__name__}; store a datetime as "
            ".isoformat(), a UUID as str(), a dataclass as dataclasses.asdict()"
        )
