"""Whether arguments fit a callable's parameters, told before the call, where it is set up."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from types import (
    BuiltinFunctionType,
    CodeType,
    FunctionType,
    MethodDescriptorType,
    MethodType,
    ModuleType,
    WrapperDescriptorType,
)
from typing import Any

# SPEC: the flags of a code object for *args and **kwargs (the inspect module's CO_ names).
_VARARGS, _VARKEYWORDS = inspect.CO_VARARGS, inspect.CO_VARKEYWORDS


def check_binding(
    fn: Callable[..., Any], args: tuple[Any, ...], kwargs: Mapping[str, Any], where: str
) -> None:
    """Raise ``TypeError`` if ``fn(*args, **kwargs)`` would fail to bind its arguments.

    A callable whose signature cannot be read (some builtins) is let be.

    Raises:
        TypeError: If the arguments do not fit ``fn``'s parameters, with the reason
            ``inspect.Signature.bind`` gives.
    """
    if type(fn) not in _PLAIN:
        fn = _as_called(fn)
    elif type(fn) is functools.partial and type(fn.func) not in _PLAIN:
        # NOTE: a partial of an object: of its __call__ as bound, which inspect got wrong too.
        fn = functools.partial(_as_called(fn.func), *fn.args, **fn.keywords)
    if type(fn) is functools.partial:
        # NOTE: a partial's own arguments come first, its keywords are overridden.
        if _fits_code(fn.func, (*fn.args, *args), {**fn.keywords, **kwargs}):
            return
    elif _fits_code(fn, args, kwargs):
        return
    signature = _builtin_signature(fn) if type(fn) is BuiltinFunctionType else _signature(fn)
    if signature is None:
        return
    try:
        signature.bind(*args, **kwargs)
    except TypeError as exc:
        name = getattr(fn, "__qualname__", None) or type(fn).__qualname__
        shown = _unannotated(signature)
        raise TypeError(f"{where}: the arguments do not fit {name}{shown}: {exc}") from None


def _signature(fn: Callable[..., Any]) -> inspect.Signature | None:
    try:
        return inspect.signature(fn, follow_wrapped=False)
    except Exception:
        # NOTE: unreadable (ValueError for most builtins), or a __getattr__ of the callable's
        # own that raises for __signature__: let be, as a call may still work.
        return None


def _builtin_signature(fn: BuiltinFunctionType) -> inspect.Signature | None:
    """Read a C function's signature once: it is parsed from its text signature each time."""
    # PERF: inspect.signature(os.remove) took 103 us a call, {}.pop 98 us (timeit,
    # 2026-12-04); read once per C function, not per bound object, whose cache would keep it.
    owner = fn.__self__
    if owner is None or isinstance(owner, (ModuleType, type)):
        return _cached_signature(fn, bound=False)
    unbound = getattr(type(owner), fn.__name__, None)
    if type(unbound) is MethodDescriptorType:
        return _cached_signature(unbound, bound=True)
    return _signature(fn)


@functools.lru_cache(maxsize=256)
def _cached_signature(fn: Callable[..., Any], *, bound: bool) -> inspect.Signature | None:
    signature = _signature(fn)
    if signature is None or not bound:
        return signature
    parameters = list(signature.parameters.values())
    if not parameters or parameters[0].kind is not inspect.Parameter.POSITIONAL_ONLY:
        return None  # NOTE: no self to drop: let be rather than guess.
    return signature.replace(parameters=parameters[1:])


def _unannotated(signature: inspect.Signature) -> inspect.Signature:
    empty = inspect.Parameter.empty
    parameters = [
        parameter.replace(annotation=empty) for parameter in signature.parameters.values()
    ]
    return signature.replace(parameters=parameters, return_annotation=empty)


def _fits_code(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> bool:
    """Tell, from its code object, that a plain function or method takes these arguments.

    ``False`` means "not known to fit": a callable of another kind, or arguments that do not
    fit, which ``inspect`` then tells apart.
    """
    # PERF: inspect.signature(fn).bind() took 10.2 us a call (14.4 for a method); this takes
    # 0.33 us for fn(path) and 0.91 us for fn(to, subject, *, body="") given a keyword
    # (timeit, 2026-12-04).
    given = len(args)
    if type(fn) is MethodType:
        fn, given = fn.__func__, given + 1
    if type(fn) is not FunctionType:
        return False
    code = fn.__code__
    if given > code.co_argcount and not code.co_flags & _VARARGS:
        return False
    if kwargs and not _keywords_fit(code, given, kwargs):
        return False
    names, posonly = code.co_varnames, code.co_posonlyargcount
    for index in range(given, code.co_argcount - len(fn.__defaults__ or ())):
        if index < posonly or names[index] not in kwargs:
            return False  # NOTE: a required parameter left out.
    if not code.co_kwonlyargcount:
        return True
    defaults = fn.__kwdefaults__ or {}
    for name in names[code.co_argcount : code.co_argcount + code.co_kwonlyargcount]:
        if name not in kwargs and name not in defaults:
            return False  # NOTE: a required keyword-only parameter left out.
    return True


# NOTE: callables that are called as they are, not through a __call__ of their class's body.
_PLAIN = frozenset({FunctionType, MethodType, functools.partial, BuiltinFunctionType})


def _as_called(fn: Callable[..., Any]) -> Callable[..., Any]:
    """What ``fn(...)`` calls: for an object whose class has a ``__call__`` written in Python,
    that ``__call__`` bound to it as Python binds it (a function to the object, a classmethod
    to its class, a staticmethod, partial or other object as it is)."""
    # NOTE: inspect took any __call__ for a method and dropped its first parameter: a
    # staticmethod's, a classmethod's and a partial's calls that work were refused; and it
    # took a class-level __signature__ for the call's. PERF: an object's def __call__ is then
    # read from its code object: 0.7 us, where inspect took 12.7.
    for _ in range(3):  # NOTE: a __call__ that is an object with a __call__, and so on.
        if type(fn) in _PLAIN or isinstance(fn, type):
            return fn
        call = _own_call(type(fn))
        if call is None or type(call) is WrapperDescriptorType:
            return fn  # NOTE: a C type's call (a Cython function's): inspect reads it.
        bind = getattr(type(call), "__get__", None)
        fn = call if bind is None else bind(call, fn, type(fn))
    return fn


def _own_call(cls: type) -> Any:
    """The ``__call__`` that ``cls`` defines or inherits, as written in its class body."""
    for klass in cls.__mro__:
        call = vars(klass).get("__call__")
        if call is not None:
            return call
    return None


def _keywords_fit(code: CodeType, given: int, kwargs: Mapping[str, Any]) -> bool:
    """Tell whether each keyword names a parameter not given by position, or goes to ``**``."""
    positional, posonly, names = code.co_argcount, code.co_posonlyargcount, code.co_varnames
    keyword_only = names[positional : positional + code.co_kwonlyargcount]
    for key in kwargs:
        if key in keyword_only:
            continue
        index = names.index(key, 0, positional) if key in names[:positional] else -1
        if index >= posonly:
            if index < given:
                return False  # NOTE: given twice, by position and by name.
        elif not code.co_flags & _VARKEYWORDS:
            return False
    return True
