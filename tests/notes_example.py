"""Import examples/notes/ (flat modules: app, db, pages...) for the tests; forget it after."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from types import ModuleType

from microweb import App

NOTES_DIR = Path(__file__).resolve().parent.parent / "examples" / "notes"
SECRET = "a-test-secret-of-32-characters!!"


@contextmanager
def imported(directory: Path) -> Iterator[ModuleType]:
    """Import ``app`` from ``directory`` with its sibling modules; remove them all afterwards."""
    for path in directory.glob("*.py"):
        sys.modules.pop(path.stem, None)  # NOTE: another test's module of the same name
    before = set(sys.modules)
    sys.path.insert(0, str(directory))
    try:
        yield importlib.import_module("app")
    finally:
        sys.path.remove(str(directory))
        for name in set(sys.modules) - before:
            if str(getattr(sys.modules[name], "__file__", "")).startswith(str(directory)):
                del sys.modules[name]


def add_user(app: App, name: str, password: str) -> None:
    """Store a user in the app's database (made first if need be)."""
    database = app.state.db
    database.create()
    auth = sys.modules["auth"]
    with closing(database.connect()) as db, db:
        auth.add_user(db, name, password)
