"""The sans-IO rule and the layers, checked by reading each module's syntax tree.

The core never imports asyncio or threading, nor names an environ or scope: only the drivers,
the body sources, the concurrency module, the test client, the CLI and plugins may do I/O. And
every module imports only its own layer or lower ones (``LAYERS``, the table of
docs/architecture.md), ``TYPE_CHECKING`` and function-local imports included, with no circle;
nor does a module take another's private name (``_name``).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import microweb

PACKAGE = Path(microweb.__file__).resolve().parent
IO_MODULES = frozenset(
    {
        "_wsgi.py",
        "_wsgi_request.py",
        "_wsgi_end.py",
        "_wsgi_closing.py",
        "_wsgi_stream.py",
        "_asgi.py",
        "_asgi_streams.py",
        "_asgi_lifespan.py",
        "_close_wait.py",
        "_asgi_websocket.py",
        "_ws_refusal.py",
        "_asgi_request.py",
        "_body.py",
        "_asgi_body.py",
        "_asgi_body_terms.py",
        "_concurrency.py",
        "_cut_closing.py",
        "_in_pool.py",
        "_close_threads.py",
        "_unawaited.py",
        "_file_threads.py",
        "_app_loop.py",
        "_stream_ahead.py",
        "_lifespans.py",
        "_pool.py",
        "_pool_futures.py",
        "testing.py",
        "_testing_wsgi.py",
        "_testing_asgi.py",
        "_testing_websocket.py",
        "_testing_http.py",
        "_testing_close.py",
        "_testing_handshake.py",
        "_testing_requests.py",
        "_cli.py",
        "_importer.py",
        "_serving.py",
        "_serve_app.py",
        "_serve_run.py",
        "_serve_options.py",
        "_serve_log.py",
        "_waitress.py",
        "_waitress_tasks.py",
        "_waitress_channel.py",
        "_uvicorn.py",
        "_uvicorn_shared.py",
        "_conn_end.py",
        "_stall.py",
        # NOTE: the Uvicorn protocols microweb serve runs: they read the request's scope.
        "_httptools.py",
        "_h11.py",
        "_ws_flow.py",
        "_ws_flow_handshake.py",
        "_supervisor.py",
        "_workers.py",
        "_worker_process.py",
        "_watcher.py",
        "_stopping.py",
        "_unix.py",
        "_sockets.py",
        "__main__.py",
    }
)
FORBIDDEN_IMPORTS = ("asyncio", "threading")
FORBIDDEN_NAMES = frozenset({"environ", "scope"})


def _is_io_module(path: Path) -> bool:
    relative = path.relative_to(PACKAGE)
    return relative.parts[0] == "plugins" or (len(relative.parts) == 1 and path.name in IO_MODULES)


ALL_MODULES = sorted(PACKAGE.rglob("*.py"))
CORE_MODULES = [path for path in ALL_MODULES if not _is_io_module(path)]


def _module_id(path: Path) -> str:
    return path.relative_to(PACKAGE).as_posix()


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _forbidden(module: str | None) -> bool:
    if not module:
        return False
    top = module.split(".")[0]
    return top in FORBIDDEN_IMPORTS


def forbidden_imports(tree: ast.AST) -> list[str]:
    """Return ``line: statement`` for every import of asyncio or threading in ``tree``."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [f"{node.lineno}: import {a.name}" for a in node.names if _forbidden(a.name)]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and _forbidden(node.module):
            found.append(f"{node.lineno}: from {node.module} import ...")
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "__import__"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and _forbidden(str(node.args[0].value))
        ):
            found.append(f"{node.lineno}: __import__({node.args[0].value!r})")
    return found


def forbidden_names(tree: ast.AST) -> list[str]:
    """Return ``line: name`` for every identifier ``environ`` or ``scope`` in ``tree``."""
    found = []
    for node in ast.walk(tree):
        name = None
        if isinstance(node, ast.Name):
            name = node.id
        elif isinstance(node, ast.arg):
            name = node.arg
        elif isinstance(node, ast.Attribute):
            name = node.attr
        if name in FORBIDDEN_NAMES:
            found.append(f"{getattr(node, 'lineno', '?')}: {name}")
    return found


def test_every_module_parses() -> None:
    for path in ALL_MODULES:
        _tree(path)


def test_core_modules_are_found() -> None:
    core = {_module_id(path) for path in CORE_MODULES}
    assert {"_app.py", "_pipeline.py", "_response.py", "_request.py"} <= core
    assert not core & IO_MODULES


def test_detector_sees_imports() -> None:
    tree = ast.parse(
        "import asyncio\nimport threading as t\nfrom asyncio import Lock\n"
        "from asyncio.events import get_running_loop\nimport os\nfrom . import threading\n"
    )
    assert len(forbidden_imports(tree)) == 4
    assert forbidden_imports(_tree(PACKAGE / "_concurrency.py"))


@pytest.mark.parametrize("path", CORE_MODULES, ids=_module_id)
def test_core_does_not_import_asyncio_or_threading(path: Path) -> None:
    assert forbidden_imports(_tree(path)) == []


# NOTE: what one import loads and starts, in a fresh interpreter: the close-thread hook that
# _concurrency sets up and _pool_futures (review363) must not start a thread at import.
_IMPORT_ALONE = (
    "import sys, threading\nimport {}\nprint('asyncio' in sys.modules, threading.active_count())"
)


def _loaded_by_import(module: str) -> tuple[bool, int]:
    done = subprocess.run(
        [sys.executable, "-c", _IMPORT_ALONE.format(module)],
        capture_output=True,
        text=True,
        check=True,
    )
    asyncio_loaded, threads = done.stdout.split()
    return asyncio_loaded == "True", int(threads)


def test_importing_microweb_loads_no_asyncio_and_starts_no_thread() -> None:
    assert _loaded_by_import("microweb") == (False, 1)


@pytest.mark.parametrize("module", ["microweb._concurrency", "microweb._pool_futures"])
def test_importing_the_concurrency_modules_starts_no_thread(module: str) -> None:
    assert _loaded_by_import(module)[1] == 1


@pytest.mark.parametrize("path", CORE_MODULES, ids=_module_id)
def test_core_does_not_name_environ_or_scope(path: Path) -> None:
    assert forbidden_names(_tree(path)) == []


# -- Layers --------------------------------------------------------------------------------------

# NOTE: the module map of docs/architecture.md. A module may import its own layer or a lower one,
# never a higher one, TYPE_CHECKING and function-local imports included.
LAYERS: dict[str, tuple[str, ...]] = {
    "values": (
        "_types", "_errors", "_limits", "_mapping_checks", "_datastructures", "_percent",
        "_cookies", "_charsets", "_strict_json", "_parsing", "_framing", "_fields",
        "_disposition", "_closing", "_sse", "_files", "_route_templates",
        "_routing", "_route_nodes", "_route_clashes", "_route_reach", "_route_table", "_url_paths",
        "_effects",
        "_target", "_buffer", "_status", "_checkpoint", "_binding", "_media", "_file_bodies",
    ),
    "core": (
        "_parts", "_streamed_parts", "_uploads", "_forms", "_request_head", "_body_cache",
        "_request_body", "_request", "_response_checks", "_response_cookies",
        "_response", "_results", "_emission", "_plugins", "_plan", "_port_hints", "_error_logs",
        "_default_answers", "_calls", "_flow_closing", "_endpoint_call", "_flows", "_ws_handshake",
        "_pipeline",
    ),
    "bridges": (
        "_app_loop", "_stream_ahead", "_unawaited", "_concurrency", "_cut_closing", "_in_pool",
        "_close_threads", "_file_threads", "_pool", "_pool_futures", "_body", "_asgi_body_terms",
        "_asgi_body", "_lifespans",
    ),
    "drivers": (
        "_wsgi_request", "_wsgi_end", "_wsgi_closing", "_wsgi_stream", "_wsgi", "_asgi_request",
        "_websocket", "_ws_refusal", "_asgi_websocket", "_close_wait",
        "_asgi_streams", "_asgi_lifespan", "_asgi",
    ),
    "facade": (
        "_other_names", "_route_nesting", "_handler_checks", "_router", "_app_registries",
        "_app_routes", "_app", "__init__", "__main__", "testing",
        "_testing_wsgi",
        "_testing_asgi",
        "_testing_http", "_testing_websocket", "_testing_cookies", "_testing_cookie_order",
        "_testing_close", "_testing_options", "_testing_requests",
        "_testing_sides", "_testing_content", "_testing_handshake", "_template_names",
        "templating", "_importer", "_serve_options", "_serve_log", "_serving", "_serve_app",
        "_serve_run", "_cli",
        "_waitress", "_waitress_parser", "_waitress_tasks", "_waitress_channel",
        "_chunked", "_uvicorn", "_httptools_targets", "_httptools_refusals", "_httptools_reads",
        "_httptools", "_h11", "_h11_connection", "_h11_framing",
        "_uvicorn_shared", "_conn_end", "_stall", "_ws_flow", "_ws_flow_handshake",
        "_supervisor", "_workers", "_worker_process", "_watcher", "_stopping", "_unix",
        "_sockets", "plugins",
    ),
}  # fmt: skip
RANK = {module: rank for rank, modules in enumerate(LAYERS.values()) for module in modules}
# NOTE: the one exception the rule allows, (importer, imported); none is needed today.
EXCEPTIONS: frozenset[tuple[str, str]] = frozenset()


def _layer_key(path: Path) -> str:
    relative = path.relative_to(PACKAGE)
    return relative.parts[0] if len(relative.parts) > 1 else path.stem


def internal_imports(tree: ast.AST, package_parts: tuple[str, ...] = ()) -> set[str]:
    """Return the package modules imported anywhere in ``tree`` (as layer keys).

    ``package_parts`` is where the module sits below ``microweb`` (``("plugins",)`` for a
    plugin), to resolve relative imports. Names imported from the package itself count as
    ``__init__``.
    """
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level > 0:
            base = list(package_parts[: len(package_parts) - (node.level - 1)])
            module = node.module.split(".") if node.module else []
            found.update(_targets([*base, *module], [alias.name for alias in node.names]))
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "microweb":
            module = (node.module or "").split(".")[1:]
            found.update(_targets(module, [alias.name for alias in node.names]))
        elif isinstance(node, ast.Import):
            dotted = [alias.name.split(".") for alias in node.names]
            found.update(d[1] if len(d) > 1 else "__init__" for d in dotted if d[0] == "microweb")
    return found


def _targets(module: list[str], names: list[str]) -> list[str]:
    if module:
        return [module[0]]
    return [name if name in RANK else "__init__" for name in names]


def _imports_of(path: Path) -> set[str]:
    return internal_imports(_tree(path), path.relative_to(PACKAGE).parent.parts)


def test_every_module_has_a_layer() -> None:
    keys = {_layer_key(path) for path in ALL_MODULES}
    assert keys - set(RANK) == set()
    assert set(RANK) - keys == set(), "a module in LAYERS that no longer exists"


def test_the_architecture_page_holds_the_same_layers() -> None:
    # NOTE: docs/architecture.md is the map a new maintainer reads first: its layer block and
    # its module table must name each module where LAYERS puts it.
    page = (PACKAGE.parent / "docs" / "architecture.md").read_text(encoding="utf-8")
    block = page.split("```text\n", 1)[1].split("```", 1)[0]
    layers: dict[str, list[str]] = {}
    for line in block.splitlines():
        words = line.split()
        if not line.startswith(" "):
            layers[words.pop(0)] = []
        names = [word.rstrip("/") for word in words if word.startswith("_") or word.endswith("/")]
        names += [word for word in words if word in ("testing", "templating")]
        layers[list(layers)[-1]].extend(names)
    assert {layer: sorted(names) for layer, names in layers.items()} == {
        layer: sorted(modules) for layer, modules in LAYERS.items()
    }
    table = page.split("| module | what it owns |", 1)[1].split("\n\n", 1)[0]
    assert [module for module in RANK if f"`{module}" not in table] == []


@pytest.mark.parametrize("path", ALL_MODULES, ids=_module_id)
def test_imports_go_down_the_layers(path: Path) -> None:
    importer = _layer_key(path)
    upward = [
        imported
        for imported in _imports_of(path)
        if RANK.get(imported, -1) > RANK[importer] and (importer, imported) not in EXCEPTIONS
    ]
    assert upward == [], f"{importer} ({_layer_of(importer)}) imports a higher layer: {upward}"


def _layer_of(module: str) -> str:
    return next(layer for layer, modules in LAYERS.items() if module in modules)


def test_the_detector_sees_local_and_type_checking_imports() -> None:
    tree = ast.parse(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ._app import App\n"
        "def f():\n    from ._concurrency import run_blocking\n    from . import _wsgi\n"
        "import microweb._asgi\nfrom microweb import Request\n"
    )
    assert internal_imports(tree) == {"_app", "_concurrency", "_wsgi", "_asgi", "__init__"}
    plugin = ast.parse("from .._plan import Plan\nfrom . import _vary\n")
    assert internal_imports(plugin, ("plugins",)) == {"_plan", "plugins"}


def test_no_import_circle() -> None:
    graph = {_module_id(path): path for path in ALL_MODULES}
    edges = {
        _layer_key(path): _imports_of(path) - {_layer_key(path)}
        for path in graph.values()
        if path.parent == PACKAGE
    }
    state: dict[str, int] = {}

    def visit(module: str, trail: list[str]) -> None:
        if state.get(module) == 2:
            return
        assert state.get(module) != 1, f"import circle: {' -> '.join([*trail, module])}"
        state[module] = 1
        for imported in sorted(edges.get(module, ())):
            visit(imported, [*trail, module])
        state[module] = 2

    for module in sorted(edges):
        visit(module, [])


# -- Private names -------------------------------------------------------------------------------

# NOTE: a name with a leading underscore is for its own module alone. One that another module
# uses drops the underscore in its home module: the modules are private already (``_x.py``),
# so no public API grows. A test may still reach a module's private name.


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _is_package_module(parts: list[str]) -> bool:
    place = PACKAGE.joinpath(*parts)
    return place.is_dir() or place.with_suffix(".py").is_file()


def private_names_taken(tree: ast.AST, package_parts: tuple[str, ...] = ()) -> list[str]:
    """Return ``line: module.name`` for each private name ``tree`` takes from a package module:
    imported (``from ._x import _name``) or read off a module it imported (``_x._name``)."""
    found: list[str] = []
    modules: dict[str, list[str]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level > 0:
            base = [*package_parts[: len(package_parts) - (node.level - 1)]]
            parts = [*base, *(node.module.split(".") if node.module else [])]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "microweb":
            parts = (node.module or "").split(".")[1:]
        else:
            continue
        for alias in node.names:
            if _is_package_module([*parts, alias.name]):
                modules[alias.asname or alias.name] = [*parts, alias.name]
            elif _private(alias.name):
                found.append(f"{node.lineno}: {'.'.join(parts)}.{alias.name}")
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in modules
            and _private(node.attr)
            and not _is_package_module([*modules[node.value.id], node.attr])
        ):
            found.append(f"{node.lineno}: {'.'.join(modules[node.value.id])}.{node.attr}")
    return found


def test_the_detector_sees_private_names_taken() -> None:
    tree = ast.parse(
        "from ._unawaited import _named, run_unawaited\nfrom . import _app_loop\n"
        "from microweb._closing import _in_thread as hook\nimport os\n"
        "_app_loop._hop()\n_app_loop.AppLoop\nos._exit\nfrom ._app import __doc__\n"
    )
    assert private_names_taken(tree) == [
        "1: _unawaited._named",
        "3: _closing._in_thread",
        "5: _app_loop._hop",
    ]
    plugin = ast.parse("from . import _vary\nfrom .._files import _x\n_vary._y\n")
    assert private_names_taken(plugin, ("plugins",)) == ["2: _files._x", "3: plugins._vary._y"]


def test_no_module_takes_another_modules_private_name() -> None:
    taken = {
        _module_id(path): found
        for path in ALL_MODULES
        if (found := private_names_taken(_tree(path), path.relative_to(PACKAGE).parent.parts))
    }
    assert taken == {}
