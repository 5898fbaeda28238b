"""README.md's two commands stay true, and CI runs exactly the test command."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _commands() -> list[str]:
    return re.findall(r"```sh\n(.+?)\n```", (ROOT / "README.md").read_text())


def test_readme_starts_with_serve_and_test_commands() -> None:
    serve, test = _commands()[:2]
    assert "pip install" in serve and "microweb serve examples/hello.py" in serve
    assert "--server" not in serve  # the default server, no options
    assert "pip install" in test and "pytest" in test
    assert (ROOT / "examples" / "hello.py").is_file()


def test_ci_runs_the_readme_test_command() -> None:
    test = _commands()[1]
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    assert test in ci_lines


def test_ci_and_tox_build_the_docs_site_strictly() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    assert "pip install -q -e '.[docs]'" in ci and "mkdocs build --strict" in ci
    tox = (ROOT / "tox.ini").read_text()
    assert "[testenv:docs]" in tox and "mkdocs build --strict" in tox
