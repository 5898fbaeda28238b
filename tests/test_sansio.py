"""The sans-IO rule: the core never imports asyncio or threading, nor names an environ or scope.

Only the drivers, the body sources, the concurrency module, the test client, the CLI and plugins
may do I/O; every other module under ``microweb/`` is checked here by reading its syntax tree.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import microweb

PACKAGE = Path(microweb.__file__).resolve().parent
IO_MODULES = frozenset(
    {
        "_wsgi.py",
        "_asgi.py",
        "_body.py",
        "_concurrency.py",
        "testing.py",
        "_cli.py",
        "_waitress.py",
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


@pytest.mark.parametrize("path", CORE_MODULES, ids=_module_id)
def test_core_does_not_name_environ_or_scope(path: Path) -> None:
    assert forbidden_names(_tree(path)) == []
