"""check_binding: arguments checked against a callable's parameters, without calling it."""

from __future__ import annotations

import functools
import inspect
import itertools
import os
import re
from collections.abc import Callable
from typing import Any

import pytest

from microweb._binding import _as_called, _fits_code, check_binding


def plain(a: int, b: int = 1) -> None: ...
def positional_only(a: int, /, b: int = 2, *, c: int) -> None: ...
def variadic(a: int, *args: int, b: int, c: int = 3, **kwargs: int) -> None: ...
def keywords_only(*, a: int) -> None: ...
def keywords_into_kwargs(a: int, /, **kwargs: int) -> None: ...
async def coroutine(x: int, *, y: int) -> None: ...


class Methods:
    def method(self, a: int, b: int = 1) -> None: ...

    @classmethod
    def classy(cls, a: int, *, b: int) -> None: ...


class Calls:
    def __call__(self, a: int, /, *, b: int = 2) -> None: ...


class CallsStatic:
    @staticmethod
    def __call__(a: int, b: int = 2) -> None: ...


class Described(Calls):
    """Its ``__signature__`` describes the class's keywords, not a call of an object."""

    __signature__ = inspect.Signature([inspect.Parameter("name", inspect.Parameter.KEYWORD_ONLY)])


def stable_repr(value: object) -> str:
    """``repr`` without the address, so that every pytest-xdist worker names the case alike."""
    return re.sub(r" at 0x[0-9a-fA-F]+", "", repr(value))


FUNCTIONS: list[Callable[..., Any]] = [
    plain, positional_only, variadic, keywords_only, keywords_into_kwargs, coroutine,
    Methods().method, Methods.classy, Calls(), Described(),
]  # fmt: skip
KEYWORDS = ("a", "b", "c", "x", "y", "args", "kwargs", "self", "z")


PARTIALS: list[Callable[..., Any]] = [
    functools.partial(plain, 0), functools.partial(plain, b=0), functools.partial(variadic, 0, c=1),
    functools.partial(positional_only, 0), functools.partial(Methods().method, a=0),
]  # fmt: skip


@pytest.mark.parametrize("fn", FUNCTIONS + PARTIALS, ids=stable_repr)
def test_the_check_agrees_with_a_call(fn: Callable[..., Any]) -> None:
    # NOTE: the functions do nothing, so a call tells whether the arguments fit; inspect's
    # signature of partial(variadic, 0, c=1) wrongly takes a=0 (given twice when called).
    for count, size in itertools.product(range(4), range(3)):
        for keys in itertools.combinations(KEYWORDS, size):
            args, kwargs = tuple(range(count)), dict.fromkeys(keys, 0)
            fits = _calls(fn, args, kwargs)
            assert _fast(fn, args, kwargs) is fits, (args, kwargs)
            if fits:
                check_binding(fn, args, kwargs, "here")
                continue
            try:
                inspect.signature(fn).bind(*args, **kwargs)
            except TypeError:
                with pytest.raises(TypeError, match=r"^here: the arguments do not fit "):
                    check_binding(fn, args, kwargs, "here")


def _calls(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    try:
        returned = fn(*args, **kwargs)
    except TypeError:
        return False
    if inspect.iscoroutine(returned):
        returned.close()
    return True


def _fast(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    fn = _as_called(fn)
    if isinstance(fn, functools.partial):
        return _fits_code(fn.func, (*fn.args, *args), {**fn.keywords, **kwargs})
    return _fits_code(fn, args, kwargs)


def test_other_callables_are_checked_by_inspect_or_let_be() -> None:
    check_binding(functools.partial(plain, 1), (2,), {}, "here")
    with pytest.raises(TypeError, match=r"fit partial\(\*, b=2\): too many positional"):
        check_binding(functools.partial(plain, 1, b=2), (3,), {}, "here")
    with pytest.raises(TypeError, match=r"fit Methods\(\): too many positional"):
        check_binding(Methods, (1,), {}, "here")
    check_binding({}.update, ({"a": 1},), {"b": 2}, "here")  # NOTE: no signature to read.


def test_a_c_functions_signature_is_read_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # NOTE: inspect parses a builtin's text signature each time: 100 us for os.remove.
    reads: list[object] = []
    signature = inspect.signature

    def counted(fn: Callable[..., Any], **options: Any) -> inspect.Signature:
        reads.append(fn)
        return signature(fn, **options)

    monkeypatch.setattr(inspect, "signature", counted)
    for _ in range(3):
        check_binding(os.remove, ("path",), {}, "here")
        check_binding(bytearray().extend, (b"x",), {}, "here")
        check_binding(int.from_bytes, (b"x",), {"byteorder": "big"}, "here")
    assert len(reads) <= 3
    with pytest.raises(TypeError, match=r"fit bytearray\.extend\(iterable_of_ints, /\)"):
        check_binding(bytearray().extend, (), {}, "here")
    with pytest.raises(TypeError, match=r"fit remove\(path, \*, dir_fd=None\): missing"):
        check_binding(os.remove, (), {}, "here")


class Lazy:
    """A callable whose ``__signature__`` is looked up elsewhere, and fails."""

    @property
    def __signature__(self) -> inspect.Signature:
        raise LookupError("not loaded")

    def __call__(self, value: int) -> None: ...


def test_a_signature_that_fails_to_load_is_let_be() -> None:
    # NOTE: inspect passes on the LookupError: the check made it a 500 of a working app.
    Lazy()(1)
    check_binding(Lazy(), (1,), {}, "here")


class CallsClassy:
    @classmethod
    def __call__(cls, a: int) -> None: ...


class CallsPartial:
    __call__ = functools.partial(plain, 1)


class CallsObject:
    __call__ = Calls()


@pytest.mark.parametrize(
    ("fn", "args"),
    [
        (CallsStatic(), (1, 2)),
        (CallsClassy(), (1,)),
        (CallsPartial(), (2,)),
        (CallsObject(), (1,)),
        (functools.partial(CallsStatic(), 1), (2,)),
        (functools.partial(CallsClassy()), (1,)),
        (functools.partial(CallsPartial()), (2,)),
    ],
    ids=stable_repr,
)
# NOTE: Python 3.13 warns that a partial as a class attribute will bind like a function in a
# later version; here it is called as 3.10 to 3.13 call it.
@pytest.mark.filterwarnings("ignore:functools.partial will be a method descriptor:FutureWarning")
def test_a_call_is_checked_as_python_binds_it(
    fn: Callable[..., Any], args: tuple[Any, ...]
) -> None:
    # NOTE: inspect took each __call__ for a function and dropped its first parameter, as if
    # it took the object: these calls, which work, were refused (a 500).
    fn(*args)
    check_binding(fn, args, {}, "here")
    with pytest.raises(TypeError, match="too many positional arguments"):
        check_binding(fn, (*args, 0, 0), {}, "here")
