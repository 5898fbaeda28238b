"""Keep ``docs/`` honest: every ```python block runs, and the pages agree with the code.

Each ```python block of each page under ``docs/`` (``docs/migrating/`` included) is executed on its
own, as a fresh module, with the working directory set to a temporary directory. Blocks that cannot
run alone use the info string ``python-fragment`` (kept rare); shell commands use ``sh``, output
and diagrams ``text``. The migration pages show another framework's code next to microweb's: such
a block names the framework in a title, ```python title="Flask"``` (or Bottle, Starlette,
Falcon, Django, optionally followed by more words), and is only compiled, never run, since those
frameworks are not test dependencies.

The tutorial (``docs/tutorial/``) builds one app of several files. Each of its blocks is a whole
file, named by a title: ```python title="app.py"```, ```html+jinja title="templates/base.html"```
(also ``css`` and ``js``). MkDocs shows the title above the block; GitHub highlights by the first
word. Such blocks are not run here: ``tests/test_tutorial.py`` writes the files of steps 1 to N
into a folder (a later step's file replaces an earlier one) and checks that step's app, so a
broken step fails a test; after the last step the files must equal ``examples/notes/``.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import pkgutil
import re
import subprocess
import sys
import time
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

import microweb
from microweb import Limits
from microweb._errors import OtherSpelling
from microweb.plugins import sessions

DOCS = Path(__file__).resolve().parent.parent / "docs"
PAGES = [
    "index.md",
    "quickstart.md",
    "routing.md",
    "requests.md",
    "forms.md",
    "responses.md",
    "templates.md",
    "streaming.md",
    "sse.md",
    "files.md",
    "websockets.md",
    "middleware.md",
    "errors.md",
    "lifespan.md",
    "plugins.md",
    "plugins-cors.md",
    "plugins-csrf.md",
    "plugins-gzip.md",
    "plugins-static.md",
    "plugins-sessions.md",
    "plugins-requestid.md",
    "plugins-trustedhosts.md",
    "plugins-proxy.md",
    "sync-and-async.md",
    "wsgi-vs-asgi.md",
    "performance.md",
    "testing.md",
    "serving.md",
    "deployment.md",
    "tutorial/index.md",
    "tutorial/1-routes-and-templates.md",
    "tutorial/2-sqlite-plugin.md",
    "tutorial/3-forms.md",
    "tutorial/4-json-api.md",
    "tutorial/5-attachments.md",
    "tutorial/6-live-updates.md",
    "tutorial/7-login.md",
    "tutorial/8-tests.md",
    "tutorial/9-serving.md",
    "migrating/index.md",
    "migrating/flask.md",
    "migrating/bottle.md",
    "migrating/starlette.md",
    "migrating/falcon.md",
    "migrating/django.md",
    "architecture.md",
]
FENCE_INFOS = {"python", "python-fragment", "text", "sh"}
# NOTE: a title keeps the language first, so GitHub and MkDocs still highlight the block as Python.
PEER_INFO = re.compile(r'python title="(Flask|Bottle|Starlette|Falcon|Django)\b[^"]*"')
# NOTE: a whole file of the tutorial's app; its title is the file's path in the app's folder.
FILE_INFO = re.compile(r'(?:python|html\+jinja|css|js) title="((?:[\w-]+/)*[\w-]+\.\w+)"')
MAX_FRAGMENTS = 5
# NOTE: a block whose first line is a comment naming a file (``# hello.py``) is also written to
# that file, so that the page's other blocks can import it; a test module is also run by pytest.
NAMED_FILE = re.compile(r"#\s*(\w+\.py)\s*$")


@dataclasses.dataclass(frozen=True)
class Block:
    """One fenced code block of a docs page."""

    page: str  # path relative to docs/, such as "migrating/flask.md"
    line: int  # line of the opening fence, 1-based
    info: str
    code: str

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}"

    @property
    def filename(self) -> str | None:
        """The file this block stands for, named by a comment on its first line."""
        match = NAMED_FILE.match(self.code.partition("\n")[0])
        return match.group(1) if match else None


def blocks_of(path: Path) -> Iterator[Block]:
    """Yield the fenced blocks of a Markdown page, with the line each one starts on."""
    lines = path.read_text(encoding="utf-8").splitlines()
    index = 0
    while index < len(lines):
        opening = lines[index]
        if not opening.startswith("```"):
            index += 1
            continue
        info = opening[3:].strip()
        end = index + 1
        while end < len(lines) and lines[end].rstrip() != "```":
            end += 1
        if end == len(lines):
            raise AssertionError(f"{path.name}:{index + 1}: code block is never closed")
        page = path.relative_to(DOCS).as_posix()
        yield Block(page, index + 1, info, "\n".join(lines[index + 1 : end]) + "\n")
        index = end + 1


def all_pages() -> list[Path]:
    """Every Markdown page under ``docs/``, subfolders included."""
    return sorted(DOCS.rglob("*.md"))


def all_blocks() -> list[Block]:
    """Every fenced block of every page, in page order."""
    return [block for path in all_pages() for block in blocks_of(path)]


PYTHON_BLOCKS = [block for block in all_blocks() if block.info == "python"]


def run_block(block: Block) -> None:
    """Execute ``block`` as a module of its own, with tracebacks pointing into the page."""
    name = "docs_example_" + re.sub(r"\W", "_", block.id)
    module = types.ModuleType(name)
    module.__file__ = str(DOCS / block.page)
    # NOTE: padding keeps line numbers in tracebacks equal to the lines of the Markdown page.
    source = "\n" * block.line + block.code
    code = compile(source, str(DOCS / block.page), "exec")
    sys.modules[name] = module  # dataclasses and pickling look their module up
    try:
        exec(code, module.__dict__)
    finally:
        del sys.modules[name]


def write_named_files(page: str, directory: Path) -> list[str]:
    """Write every block of ``page`` that names a file into ``directory``.

    Returns:
        The module names of the files written.
    """
    names = []
    for block in PYTHON_BLOCKS:
        if block.page == page and block.filename is not None:
            (directory / block.filename).write_text(block.code, encoding="utf-8")
            names.append(block.filename.removesuffix(".py"))
    return names


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A temporary working directory on ``sys.path``; modules imported from it are forgotten."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    before = set(sys.modules)
    yield tmp_path
    for name in set(sys.modules) - before:
        if str(getattr(sys.modules[name], "__file__", "")).startswith(str(tmp_path)):
            del sys.modules[name]


class TickingClock:
    """``time`` for the sessions plugin, a second later at each reading.

    A block that compares the two sides (``interface="both"``) over a cookie signed with the
    time then fails every time, not only when a second turns between the sides."""

    def __init__(self) -> None:
        self.readings = 0

    def time(self) -> float:
        self.readings += 1
        return time.time() + self.readings


@pytest.mark.parametrize("block", PYTHON_BLOCKS, ids=[block.id for block in PYTHON_BLOCKS])
def test_python_block_runs(block: Block, workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sessions, "time", TickingClock())
    for name in write_named_files(block.page, workdir):
        # NOTE: another test may have imported a module of the same name (``hello``, say).
        monkeypatch.delitem(sys.modules, name, raising=False)
    run_block(block)


USER_TESTS = [
    block for block in PYTHON_BLOCKS if block.filename and block.filename.startswith("test_")
]


def run_pytest(test_file: str, folder: Path) -> str:
    """Run pytest on ``test_file`` in ``folder``, warnings as errors; assert it passed and
    return what it printed."""
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "error"]
    result = subprocess.run(
        [*command, test_file], cwd=folder, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.mark.parametrize("block", USER_TESTS, ids=[block.id for block in USER_TESTS])
def test_user_test_module_passes_under_pytest(block: Block, tmp_path: Path) -> None:
    write_named_files(block.page, tmp_path)
    assert " passed" in run_pytest(str(block.filename), tmp_path)


def test_every_page_exists() -> None:
    missing = [page for page in PAGES if not (DOCS / page).is_file()]
    assert not missing


def test_every_block_has_a_known_info_string() -> None:
    unknown = [
        f"{block.id} {block.info!r}"
        for block in all_blocks()
        if block.info not in FENCE_INFOS
        and not PEER_INFO.fullmatch(block.info)
        and not FILE_INFO.fullmatch(block.info)
    ]
    assert not unknown, (
        f"use one of {sorted(FENCE_INFOS)}, {PEER_INFO.pattern} or {FILE_INFO.pattern}"
    )


PEER_BLOCKS = [block for block in all_blocks() if PEER_INFO.fullmatch(block.info)]


@pytest.mark.parametrize("block", PEER_BLOCKS, ids=[block.id for block in PEER_BLOCKS])
def test_peer_block_compiles(block: Block) -> None:
    compile("\n" * block.line + block.code, str(DOCS / block.page), "exec")


def test_peer_blocks_stay_on_migration_pages() -> None:
    assert not [block.id for block in PEER_BLOCKS if not block.page.startswith("migrating/")]


def test_fragments_stay_rare() -> None:
    fragments = [block.id for block in all_blocks() if block.info == "python-fragment"]
    assert len(fragments) <= MAX_FRAGMENTS, fragments


def test_every_page_has_a_runnable_example() -> None:
    with_examples = {block.page for block in PYTHON_BLOCKS}
    with_examples |= {block.page for block in all_blocks() if FILE_INFO.fullmatch(block.info)}
    # NOTE: performance.md shows measurements; what it runs are bench/'s commands.
    overviews = ("index.md", "tutorial/index.md", "performance.md")
    assert not [page for page in PAGES if page not in overviews and page not in with_examples]


def test_index_links_every_page() -> None:
    index = (DOCS / "index.md").read_text(encoding="utf-8")
    assert not [page for page in PAGES[1:] if f"]({page})" not in index]


LINK = re.compile(r"\]\(([^)#\s]*\.md)?(?:#([^)\s]+))?\)")
HEADING = re.compile(r"^#+\s+(.*)$")


def anchors_of(path: Path) -> set[str]:
    """The GitHub-style anchors of a page's headings (code blocks skipped)."""
    text = path.read_text(encoding="utf-8")
    code_lines = {
        line
        for block in blocks_of(path)
        for line in range(block.line, block.line + block.code.count("\n") + 2)
    }
    anchors = set()
    for number, line in enumerate(text.splitlines(), start=1):
        heading = HEADING.match(line)
        if heading and number not in code_lines:
            slug = re.sub(r"[^\w\- ]", "", heading.group(1).strip().lower())
            anchors.add(slug.replace(" ", "-"))
    return anchors


def test_links_between_pages_resolve() -> None:
    broken = []
    for path in all_pages():
        page = path.relative_to(DOCS).as_posix()
        for target, anchor in LINK.findall(path.read_text(encoding="utf-8")):
            linked = path.parent / target if target else path
            if not linked.is_file():
                broken.append(f"{page} -> {target}")
            elif anchor and anchor not in anchors_of(linked):
                broken.append(f"{page} -> {target}#{anchor}")
    assert not broken


_ROW = re.compile(r"^\|\s*`(\w+)`\s*\|\s*([^|]+?)\s*\|")
_SIZE = re.compile(r"(\d+)\s*(KiB|MiB)?")
_UNITS = {None: 1, "KiB": 1024, "MiB": 1024 * 1024}


def test_limits_table_matches_the_defaults() -> None:
    documented: dict[str, int] = {}
    for line in (DOCS / "requests.md").read_text(encoding="utf-8").splitlines():
        row = _ROW.match(line)
        if row is None or not row.group(1).startswith(("max_", "spool_")):
            continue
        size = _SIZE.match(row.group(2))
        assert size is not None, line
        documented[row.group(1)] = int(size.group(1)) * _UNITS[size.group(2)]
    defaults = dataclasses.asdict(Limits())
    assert documented == defaults


REFERENCE = DOCS / "reference"
DIRECTIVE = re.compile(r"^:::\s+([\w.]+)\s*$", re.MULTILINE)


def documented_names() -> list[str]:
    """The object named by each ``::: path`` directive of the API reference pages."""
    return [
        name
        for path in sorted(REFERENCE.glob("*.md"))
        for name in DIRECTIVE.findall(path.read_text(encoding="utf-8"))
    ]


# NOTE: microweb and each of its public submodules (plugins, testing, and any added later).
PUBLIC_MODULES = ["microweb"] + [
    f"microweb.{info.name}"
    for info in pkgutil.iter_modules(microweb.__path__)
    if not info.name.startswith("_")
]


@pytest.mark.parametrize("module", PUBLIC_MODULES)
def test_every_public_name_has_one_reference_entry(module: str) -> None:
    exported = [f"{module}.{name}" for name in importlib.import_module(module).__all__]
    documented = documented_names()
    assert not [name for name in exported if documented.count(name) != 1], (
        "add each to one docs/reference/*.md page as `::: NAME`"
    )


def test_reference_documents_nothing_private() -> None:
    assert not [name for name in documented_names() if "._" in name]


# NOTE: a class that inherits its methods from a private mixin lists its members in reading order
# (mkdocstrings sorts inherited ones by their line in another file); a method left out of the
# list would be left out of the reference.
MEMBERS_LIST = re.compile(r"^:::\s+([\w.]+)\s*\n(?:[ ]{4}.*\n)*?[ ]{6}members: \[([^\]]*)\]", re.M)


def listed_members() -> dict[str, list[str]]:
    """The ``members: [...]`` list of each reference directive that has one."""
    return {
        name: [member.strip() for member in members.split(",")]
        for path in sorted(REFERENCE.glob("*.md"))
        for name, members in MEMBERS_LIST.findall(path.read_text(encoding="utf-8"))
    }


def _documented_members(cls: type) -> set[str]:
    """The public methods and properties with a docstring that ``cls`` has from microweb."""
    found = set()
    for name in dir(cls):
        owner = next(base for base in cls.__mro__ if name in vars(base))
        member = vars(owner)[name]
        if isinstance(member, (classmethod, staticmethod)):
            member = member.__func__
        if (
            not name.startswith("_")
            and owner.__module__.startswith("microweb")
            and isinstance(member, (property, types.FunctionType))
            and member.__doc__
        ):
            found.add(name)
    return found


def test_the_members_lists_are_found() -> None:
    assert {
        "microweb.App",
        "microweb.Request",
        "microweb.Response",
        "microweb.testing.TestClient",
    } <= set(listed_members())


@pytest.mark.parametrize("name", sorted(listed_members()))
def test_a_members_list_names_every_documented_member_once(name: str) -> None:
    module, _, attribute = name.rpartition(".")
    cls = getattr(importlib.import_module(module), attribute)
    members = listed_members()[name]
    assert len(members) == len(set(members))
    assert not [member for member in members if not hasattr(cls, member)]
    assert not _documented_members(cls) - set(members), f"add them to {name}'s members list"


def _refused(cls: type, name: str) -> bool:
    """Whether ``name`` is another framework's spelling that ``cls`` refuses."""
    return isinstance(inspect.getattr_static(cls, name, None), OtherSpelling) or (
        isinstance(inspect.getattr_static(cls, name, None), property)
        and "Not one here" in str(inspect.getattr_static(cls, name).__doc__)
    )


def test_the_reference_shows_no_other_frameworks_spelling() -> None:
    # NOTE: Response.status_code and HTTPError.status_code, refusals with a docstring,
    # were shown in the API reference as if they were microweb's own attributes.
    griffe = pytest.importorskip("griffe")
    package = griffe.load("microweb", search_paths=[str(DOCS.parent)])
    shown = []
    for name in documented_names():
        module, _, attribute = name.rpartition(".")
        cls = getattr(importlib.import_module(module), attribute, None)
        if not isinstance(cls, type):
            continue  # NOTE: a module's page, microweb.templating's, or a function's.
        members = listed_members().get(name) or list(
            package[name.removeprefix("microweb.")].all_members
        )
        shown.extend(f"{name}.{member}" for member in members if _refused(cls, member))
    assert not shown


def test_every_page_is_in_the_site_nav() -> None:
    config = (DOCS.parent / "mkdocs.yml").read_text(encoding="utf-8")
    # NOTE: commented-out nav lines do not count; mkdocs build --strict fails on either list.
    listed = set(re.findall(r"^\s*-\s+(?:[^:#\n]+:\s+)?([\w/.-]+\.md)\s*$", config, re.MULTILINE))
    pages = {path.relative_to(DOCS).as_posix() for path in DOCS.rglob("*.md")}
    assert not sorted(pages - listed), "add the page to `nav:` in mkdocs.yml"
    assert not sorted(page for page in listed - pages if not (DOCS.parent / page).is_file()), (
        "nav names a page that does not exist"
    )


IMAGE = re.compile(r"!\[[^\]]*\]\(([^)\s]+)\)")


def test_images_resolve() -> None:
    missing = []
    for path in all_pages():
        for target in IMAGE.findall(path.read_text(encoding="utf-8")):
            if "://" not in target and not (path.parent / target).is_file():
                missing.append(f"{path.relative_to(DOCS).as_posix()} -> {target}")
    assert not missing


def test_every_stated_python_minimum_is_the_packages_own() -> None:
    # NOTE: "Python 3.10 or later" sent a reader with 3.10.6 to a pip that refuses to install.
    pyproject = (DOCS.parent / "pyproject.toml").read_text()
    floor = re.search(r'requires-python = ">=([\d.]+)"', pyproject)
    assert floor is not None
    texts = {page: (DOCS / page).read_text() for page in PAGES}
    texts["../README.md"] = (DOCS.parent / "README.md").read_text()
    stated = [
        (page, found.group(1))
        for page, text in texts.items()
        for found in re.finditer(r"Python ([\d.]+) or (?:later|newer)", text)
    ]
    assert stated
    assert [(page, version) for page, version in stated if version != floor.group(1)] == []
