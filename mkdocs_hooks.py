"""MkDocs hooks (see ``hooks:`` in mkdocs.yml): mount repository files that the docs link to.

The pages under ``docs/`` are read on GitHub too, so they link to files elsewhere in the
repository by relative path: ``../SECURITY.md``, ``../examples/deploy/nginx.conf``,
``../examples/deploy/``. MkDocs only knows ``docs/``, and under ``--strict`` such a link fails the
build. These hooks put each linked file into the site at its repository path and point the link
at it, leaving the Markdown sources as they are:

- a Markdown file becomes a page of its own (its links back into ``docs/`` are rewritten too);
- any other file becomes a page that shows it in a code block;
- a directory becomes a page that lists what it holds.

A nav entry may also name a repository file outside ``docs/`` (``bench/README.md``); it is mounted
the same way. A link to a file that does not exist is left alone, so the strict build reports it.
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path
from typing import Any

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File, Files, InclusionLevel
from mkdocs.structure.pages import Page

# An inline link or image target: ``](target)`` or ``](target "title")``.
LINK = re.compile(r"(\]\()([^)\s]+)((?:\s+\"[^\"]*\")?\))")
EXTERNAL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:|^/|^#")
LANGUAGES = {
    ".py": "python",
    ".conf": "nginx",
    ".service": "ini",
    ".toml": "toml",
    ".sh": "sh",
    ".json": "json",
    ".yml": "yaml",
    ".yaml": "yaml",
}
SKIPPED = {"__pycache__", ".venv", ".git"}

# The site page (src_uri) of each repository file or directory mounted, docs/ pages included.
_site_of: dict[str, str] = {}
# The repository path that each site page's links are relative to, by src_uri.
_base_of: dict[str, str] = {}


def _site_path(repo_path: str, root: Path, docs: str) -> str:
    """Where the repository file or directory ``repo_path`` goes in the site (a src_uri)."""
    if repo_path.startswith(docs + "/"):
        return repo_path[len(docs) + 1 :]
    if (root / repo_path).is_dir():
        return posixpath.join(repo_path, "index.md")
    if repo_path.endswith(".md"):
        return repo_path
    return repo_path + ".md"


def _targets(markdown: str, base: str) -> list[tuple[str, str, str]]:
    """``(link, target's repository path, fragment)`` for each relative link in ``markdown``."""
    found = []
    for match in LINK.finditer(markdown):
        link = match.group(2)
        if EXTERNAL.match(link):
            continue
        path, _, fragment = link.partition("#")
        target = posixpath.normpath(posixpath.join(posixpath.dirname(base), path))
        found.append((link, target, fragment))
    return found


def _fence(text: str) -> str:
    """A backtick fence longer than any run of backticks in ``text``."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def _page_for(repo_path: str, root: Path) -> str:
    """The Markdown of the site page that stands for a repository file or directory."""
    source = root / repo_path
    if source.is_dir():
        lines = [f"# {repo_path}/", ""]
        for entry in sorted(source.iterdir()):
            if entry.name not in SKIPPED and not entry.name.startswith("."):
                name = entry.name + ("/" if entry.is_dir() else "")
                lines.append(f"- [`{name}`]({name})")
        return "\n".join(lines) + "\n"
    text = source.read_text(encoding="utf-8")
    if repo_path.endswith(".md"):
        return text
    language = "docker" if source.name == "Dockerfile" else LANGUAGES.get(source.suffix, "text")
    fence = _fence(text)
    return f"# {repo_path}\n\n{fence}{language}\n{text.rstrip()}\n{fence}\n"


def _nav_paths(nav: Any) -> list[str]:
    """Every page path named in the nav configuration."""
    if isinstance(nav, str):
        return [] if EXTERNAL.match(nav) else [nav]
    if isinstance(nav, dict):
        return [path for value in nav.values() for path in _nav_paths(value)]
    if isinstance(nav, list):
        return [path for item in nav for path in _nav_paths(item)]
    return []


def _layout(config: MkDocsConfig) -> tuple[Path, str]:
    """The repository root, and docs_dir relative to it."""
    root = Path(config.config_file_path).resolve().parent
    return root, Path(config.docs_dir).resolve().relative_to(root).as_posix()


def on_files(files: Files, config: MkDocsConfig) -> Files:
    """Mount every repository file outside docs/ that a page links to or the nav names."""
    root, docs = _layout(config)
    _site_of.clear()
    _base_of.clear()
    queue = []
    for page in files.documentation_pages():
        _site_of[posixpath.join(docs, page.src_uri)] = page.src_uri
        _base_of[page.src_uri] = posixpath.join(docs, page.src_uri)
        queue.append(page.src_uri)
    for path in _nav_paths(config.nav):
        if files.get_file_from_path(path) is None and (root / path).is_file():
            queue.extend(_mount(path, files, config, root, docs))
    while queue:
        src_uri = queue.pop()
        file = files.get_file_from_path(src_uri)
        assert file is not None
        for _, target, _ in _targets(file.content_string, _base_of[src_uri]):
            # NOTE: a target outside the repository or missing is left for MkDocs to report.
            if not target.startswith("../") and (root / target).exists():
                queue.extend(_mount(target, files, config, root, docs))
    return files


def _mount(repo_path: str, files: Files, config: MkDocsConfig, root: Path, docs: str) -> list[str]:
    """Add the page for ``repo_path`` unless it is already in the site; return the new page."""
    if repo_path in _site_of or repo_path == docs or repo_path.startswith(docs + "/"):
        return []
    src_uri = _site_path(repo_path, root, docs)
    file = File.generated(
        config, src_uri, content=_page_for(repo_path, root), inclusion=InclusionLevel.NOT_IN_NAV
    )
    clash = [other.src_uri for other in files if other.dest_uri == file.dest_uri]
    if clash:
        raise PluginError(f"{repo_path} would be mounted over {docs}/{clash[0]}")
    files.append(file)
    _site_of[repo_path] = src_uri
    is_dir = (root / repo_path).is_dir()
    _base_of[src_uri] = posixpath.join(repo_path, "index.md") if is_dir else repo_path
    return [src_uri]


def on_page_markdown(markdown: str, page: Page, config: MkDocsConfig, files: Files) -> str:
    """Point links at the site pages of their targets where the two trees differ."""
    base = _base_of.get(page.file.src_uri)
    if base is None:
        return markdown
    here = posixpath.dirname(page.file.src_uri) or "."
    replacements = {}
    for link, target, fragment in _targets(markdown, base):
        if target in _site_of:
            new = posixpath.relpath(_site_of[target], here) + (f"#{fragment}" if fragment else "")
            if new != link:
                replacements[link] = new

    def replace(match: re.Match[str]) -> str:
        return match.group(1) + replacements.get(match.group(2), match.group(2)) + match.group(3)

    return LINK.sub(replace, markdown)
