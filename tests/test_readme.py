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


def test_readme_names_the_extras_each_example_needs_beyond_the_serve_command() -> None:
    # NOTE: the first command installs only the `servers` extra; an example that imports Jinja2
    # (the notes app) fails at `microweb serve` with an ImportError unless the README says more.
    serve = _commands()[0]
    readme = (ROOT / "README.md").read_text()
    needs_jinja = sorted(
        path.relative_to(ROOT).parts[1]
        for path in (ROOT / "examples").rglob("*.py")
        if re.search(r"^\s*(from|import) (jinja2|microweb\.templating)\b", path.read_text(), re.M)
    )
    assert needs_jinja == ["notes"]  # NOTE: a new one: say so in the README's examples bullet
    assert "jinja" not in serve
    bullet = readme[readme.index("- [examples/]") :]
    bullet = bullet[: bullet.index("\n- ")]
    notes = bullet[bullet.index("`notes/`") : bullet.index("`deploy/`")]
    assert "pip install -e '.[jinja]'" in notes
    assert "examples/notes/auth.py" in notes  # NOTE: adding a note needs a user; no sign-up page
