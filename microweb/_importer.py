"""The app a command line names: ``module:attr``, ``module`` or ``file.py[:attr]``, imported;
``attr()`` calls an app factory."""

from __future__ import annotations

import functools
import importlib
import importlib.machinery
import importlib.util
import inspect
import os
import re
import sys
import types

from ._app import App
from ._router import Router
from ._routing import is_async_callable


class TargetError(Exception):
    """The target named on the command line does not lead to an App."""


def load_app(target: str) -> App:
    """Import the app named by ``target``: ``module:attr``, ``module``, ``file.py[:attr]``.

    The attribute defaults to ``app``. ``module:attr()`` calls the attribute, an app factory
    such as Flask's ``create_app``, with no arguments, and serves the ``App`` it returns.

    Raises:
        TargetError: With a message that says what was not found.
    """
    location, attr, call = _split(target)
    if location.endswith(".py") or os.sep in location:
        module = _import_file(location)
    else:
        module = _import_module(target, location)
    obj: object = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise TargetError(f"{location!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if call:
        obj = _called(target, obj)
    if not isinstance(obj, App):
        raise _not_an_app(target, location, attr, obj)
    return obj


_DRIVE = re.compile(r"[A-Za-z]:[\\/]")


def _located(target: str) -> tuple[str, str]:
    """Return the target's location and what follows its ``:`` (``""`` when nothing does)."""
    # NOTE: a Windows path's drive ("C:\\apps\\shop.py:app") is no module:attr separator.
    drive = target[:2] if _DRIVE.match(target) else ""
    location, _, attr = target[len(drive) :].partition(":")
    return drive + location, attr


def factory_target(target: str) -> str:
    """Return ``target`` calling its attribute (``--factory``): ``module:create_app()``."""
    if target.endswith(("()", ":")):
        return target  # NOTE: one that ends in ":" is refused as it is loaded.
    # NOTE: split at the first ":" as load_app does, a Windows drive aside: --factory made
    # "C:\\apps\\shop.py" the file "C:\\apps\\shop.py()", which was not found.
    location, attr = _located(target)
    return f"{location}:{attr or 'app'}()"


def _split(target: str) -> tuple[str, str, bool]:
    """Return the target's location, its attribute and whether it calls it (``()``)."""
    location, attr = _located(target)
    if target.endswith(":"):
        # NOTE: served the module's app, as if the ":" were not there.
        raise TargetError(
            f"{target!r} names nothing after ':': write {location}:app, or {location} for its app"
        )
    attr = attr or "app"
    call = attr.endswith("()")
    if call:
        attr = attr[:-2]
        if not attr:
            raise TargetError(f"{target!r} names nothing to call: write module:create_app()")
    if not _is_dotted(attr):
        raise _not_a_name(target, attr)
    return location, attr, call


def _not_a_name(target: str, attr: str) -> TargetError:
    name, parenthesis, rest = attr.partition("(")
    if parenthesis and rest.endswith(")") and rest[:-1] and _is_dotted(name):
        # NOTE: flask --app "shop:create_app('dev')" takes arguments; looked up as an attribute,
        # the name would be reported missing (with --factory too, which adds the "()").
        return TargetError(
            f"{target!r} passes arguments: a factory is called with none; serve a module that "
            f"calls it, app = {name}(...)"
        )
    return TargetError(
        f"{target!r} names no attribute: write module:app, or module:create_app() for a factory"
    )


def _is_dotted(name: str) -> bool:
    return all(part.isidentifier() for part in name.split("."))


def _import_module(target: str, location: str) -> types.ModuleType:
    if not location or location.startswith("."):
        # NOTE: importlib raised ValueError or TypeError for these, a traceback on the console.
        raise TargetError(f"{target!r} names no module: write module:app, with an absolute name")
    sys.path.insert(0, os.getcwd())
    try:
        return importlib.import_module(location)
    except ModuleNotFoundError as exc:
        if not _names_target(exc.name, location):
            # NOTE: a module the target imports is missing, not the target: an error of its
            # code, with the traceback that gives its line (loaded()), where it was said as
            # "cannot import module 'shop'" alone.
            raise
        if os.path.isfile(location):
            # NOTE: "app.txt" was imported as the module "txt" of a package "app": "No module
            # named 'app'", of a file that is there.
            raise _not_python(location) from None
        raise TargetError(f"cannot import module {location!r}: {exc}") from None


def _names_target(missing: str | None, location: str) -> bool:
    """Whether the module found missing is ``location`` or a package it is in."""
    return missing is not None and (location + ".").startswith(missing + ".")


def _called(target: str, factory: object) -> App:
    """Return the App that ``factory()`` makes (what ``module:factory()`` serves)."""
    if isinstance(factory, App):
        # NOTE: "leave out the ()" was said to --factory too, where nobody had written them.
        location, attr = _located(target)
        raise TargetError(
            f"{target!r} calls an App, not an app factory: serve "
            f"{location}:{attr.removesuffix('()')}, without () or --factory"
        )
    entrypoint = getattr(factory, "__name__", None)
    if isinstance(getattr(factory, "__self__", None), App) and entrypoint in _ENTRYPOINTS:
        # NOTE: "uvicorn --factory mymod:app.as_asgi" as it is: as_wsgi() was called, which
        # ran the startup hooks ("microweb routes" too), and the error named what it returned.
        location, attr = _located(target)
        owner = attr.removesuffix("()").rpartition(".")[0]
        raise TargetError(
            f"{target!r} calls the App's {entrypoint}(), not an app factory: serve "
            f"{location}:{owner}, without () or --factory"
        )
    if not callable(factory):
        raise TargetError(f"{target!r} calls {_a(type(factory).__name__)}, which can't be called")
    if is_async_callable(factory):
        # NOTE: called, it made a coroutine that nobody awaited (a RuntimeWarning besides).
        raise TargetError(
            f"{target!r} is an async def factory: make it a def, and await what it needs "
            "in an on_startup hook"
        )
    try:
        inspect.signature(factory).bind()
    except TypeError:
        name = _located(target)[1].removesuffix("()")
        raise TargetError(
            f"{target!r} needs arguments: serve a module that calls it, app = {name}(...)"
        ) from None
    except ValueError:  # NOTE: no signature to read (some built-ins): it is just called.
        pass
    if factory is App:
        # NOTE: made anew, the app had none of the routes the module registered; "serve
        # module:App" says the same.
        raise TargetError(
            f"{target!r} calls the class App itself, which makes an app with none of the "
            "module's routes: make one, app = App(), register the routes on it and serve that"
        )
    made = factory()
    if not isinstance(made, App):
        kind = type(made).__name__
        raise TargetError(f"{target!r} returned an object of type {kind}, not a microweb App")
    return made


# NOTE: the App's methods that build a driver (as_wsgi() runs the startup hooks too); another
# method of an App may be an app factory that makes a new one.
_ENTRYPOINTS = frozenset({"as_wsgi", "as_asgi"})
# NOTE: what may make an App when called; any other callable (a WSGIDriver is one) is not.
_MAKERS = (types.FunctionType, types.MethodType, functools.partial, type)


def _not_an_app(target: str, location: str, attr: str, obj: object) -> TargetError:
    """Return the error for a target that names ``obj``, not an App: what to serve instead."""
    owner = attr.rpartition(".")[0]
    if isinstance(getattr(obj, "__self__", None), App):
        # NOTE: app.as_wsgi, as waitress-serve --call and uvicorn --factory take it.
        return TargetError(
            f"{target!r} is a method of an App, not the App: serve {location}:{owner}"
        )
    refused = _class_or_router(obj)
    if refused:
        return TargetError(f"{target!r} is {refused}")
    kind = "class" if isinstance(obj, type) else type(obj).__name__
    if isinstance(getattr(obj, "app", None), App) and not isinstance(obj, types.ModuleType):
        return TargetError(
            f"{target!r} is a {kind}, made by an App's as_wsgi() or as_asgi(): serve the App"
        )
    if isinstance(obj, type) and not issubclass(obj, App):
        # NOTE: called, it makes no App (an ASGI 2 app is such a class): "if it is an app
        # factory" sent the user to a target that failed next.
        return TargetError(
            f"{target!r} is the class {attr.rpartition('.')[2]}, not a microweb App: microweb "
            "serve serves an App, app = App(), or an app factory that returns one"
        )
    if isinstance(obj, _MAKERS):
        # NOTE: the name as the target wrote it: a lambda's own __name__ is "<lambda>", an
        # alias's is the function's.
        return TargetError(
            f"{target!r} is a {kind}, not a microweb App; if it is an app factory, serve "
            f"{location}:{attr}() (or add --factory)"
        )
    return TargetError(f"{target!r} is {_a(kind)}, not a microweb App")


def _class_or_router(obj: object) -> str:
    """Say what ``obj`` is and what to serve instead, for microweb's class ``App`` (as a
    factory, it made an app without the module's routes) or a ``Router`` (a class or one,
    which Starlette serves); else ``""``."""
    if obj is App:
        return (
            "the class App itself, not a microweb App: make one, app = App(), register the "
            "routes on it and serve that"
        )
    include = "app = App(); app.include(router), and serve the app"
    if isinstance(obj, Router):
        return f"a Router, not a microweb App: include it in one, {include}"
    if isinstance(obj, type) and issubclass(obj, Router):
        return f"the class {obj.__name__}, not a microweb App: include a router in one, {include}"
    return ""


def _a(kind: str) -> str:
    """Return ``kind`` after its article: ``a str``, ``an int``."""
    # NOTE: "'shop:app' is a int" was the message for app = 5.
    return ("an " if kind[:1].lower() in "aeiou" else "a ") + kind


def _not_python(path: str) -> TargetError:
    return TargetError(
        f"{path} is not a Python file: a target is module:attr or path/to/file.py[:attr]"
    )


def _import_file(path: str) -> object:
    if os.path.isdir(path):
        raise TargetError(
            f"{path} is a directory: a target is module:attr or path/to/file.py[:attr]"
        )
    if not os.path.isfile(path):
        raise TargetError(f"no such file: {path}")
    if not path.endswith(".py"):
        # NOTE: said "cannot load", with no word of why.
        raise _not_python(path)
    directory = os.path.dirname(os.path.abspath(path))
    sys.path.insert(0, directory)
    name = os.path.splitext(os.path.basename(path))[0]
    if _would_shadow(name, os.path.abspath(path)):
        # NOTE: a file named like a module (json.py, http.py) must not replace that module.
        name = f"__microweb_target__{name}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise TargetError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _would_shadow(name: str, path: str) -> bool:
    if name in sys.modules:
        return True
    try:
        found = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return True
    return found is not None and found.origin != path


def source_dir(target: str) -> str:
    """Return the folder of the code ``target`` names, for the reloader to watch."""
    # NOTE: the drive of "C:\\apps\\shop.py" was taken for the module "C": the reloader
    # watched the working directory instead of the file's folder.
    location = _located(target)[0]
    if location.endswith(".py") or os.sep in location:
        return os.path.dirname(os.path.abspath(location))
    # NOTE: the cwd was watched for every module target (as Uvicorn's default is): a package
    # on sys.path elsewhere (src/, an editable install) was never reloaded. The folder that
    # holds its top package is watched, which is the cwd for code that is there.
    return _module_dir(location.partition(".")[0]) or os.getcwd()


# NOTE: where pip installs: watched whole, every installed package's change would reload.
_INSTALL_DIRS = frozenset({"site-packages", "dist-packages"})


def _module_dir(top: str) -> str | None:
    """The folder that holds the top-level module or package ``top`` (a package's own folder
    when that is an install folder), ``None`` for one that is not found or has none."""
    # NOTE: looked for as the child imports it, the cwd first: without it (sys.path[0] is the
    # script's bin/ under the microweb command), a project's test/ package found the standard
    # library's "test", and the whole standard library was watched.
    try:
        spec = importlib.machinery.PathFinder.find_spec(top, [os.getcwd(), *sys.path])
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    if spec.submodule_search_locations:
        package = os.path.abspath(next(iter(spec.submodule_search_locations)))
        holder = os.path.dirname(package)
        return package if os.path.basename(holder) in _INSTALL_DIRS else holder
    if spec.origin is None or not spec.has_location:
        return None  # NOTE: a built-in or frozen module.
    holder = os.path.dirname(os.path.abspath(spec.origin))
    return None if os.path.basename(holder) in _INSTALL_DIRS else holder
