"""Template names: which name a template that ``Templates`` serves, and the startup checks of
the names that templates use (``check_names``) and of templates that need filters or tests the
app adds later (``compiles_once_added``)."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from typing import Any

import jinja2
import jinja2.nodes

logger = logging.getLogger("microweb")


def hidden(name: str) -> bool:
    # NOTE: editor swap files (".page.html.swp") and folders such as ".git" are no templates.
    return any(part.startswith(".") for part in name.split("/"))


def _listed(name: str) -> bool:
    """Tell whether ``name`` is spelled as ``list_templates()`` spells a template it finds."""
    return not hidden(name) and all(name.split("/")) and "\x00" not in name


def servable(environment: jinja2.Environment, compiled: frozenset[str], name: str) -> bool:
    # NOTE: anything else, Jinja would look for on disk, on the event loop, and cache what it
    # found under this spelling for good: "./page.html", "//page.html", and hidden files,
    # which are not compiled up front.
    return name in compiled or (environment.auto_reload and _listed(name))


# NOTE: the tags that name another template, by what they do with it.
_NAMING = {
    jinja2.nodes.Extends: "extends",
    jinja2.nodes.Include: "includes",
    jinja2.nodes.Import: "imports",
    jinja2.nodes.FromImport: "imports",
}


# NOTE: what runs its body only on some renders, or none: a branch of an if, a loop's body
# and its else, a macro's body and a call block's.
_BRANCHES = (jinja2.nodes.If, jinja2.nodes.For, jinja2.nodes.Macro, jinja2.nodes.CallBlock)


def _unfound(
    env: jinja2.Environment, compiled: frozenset[str], name: str, source: str
) -> tuple[list[str], list[tuple[str, str]]]:
    """Say where the template ``name`` names, as written, a template it can never load: where
    every render runs that tag, and where a branch does (see ``_BRANCHES``), with the tag's
    verb. A name made as the page runs, or included ``ignore missing``, is left to render
    time."""
    always: list[str] = []
    branched: list[tuple[str, str]] = []
    tree = env.parse(source, name)
    # NOTE: every {% block %} of a template that extends another is an override, wherever it
    # stands: the base renders it, whether a branch around the tag is taken or not.
    child = any(isinstance(node, jinja2.nodes.Extends) for node in tree.body)
    for node, in_branch in _naming_tags(tree, False, child):
        target = getattr(node, "template", None)
        if getattr(node, "ignore_missing", False) or not isinstance(target, jinja2.nodes.Const):
            continue
        if isinstance(target.value, str) and not servable(env, compiled, target.value):
            verb = _NAMING[type(node)]
            where = f"{name!r} (line {node.lineno}) {verb} {target.value!r}"
            if in_branch:
                branched.append((where, verb))
            else:
                always.append(where)
    return always, branched


def _naming_tags(
    node: jinja2.nodes.Node, in_branch: bool, overrides: bool
) -> Iterator[tuple[jinja2.nodes.Stmt, bool]]:
    """Yield the tags under ``node`` that name a template, each with whether a branch holds it;
    with ``overrides`` (a template that extends), a block's body is as a base renders it."""
    for child in node.iter_child_nodes():
        if isinstance(child, jinja2.nodes.Stmt) and type(child) in _NAMING:
            yield child, in_branch
        if overrides and isinstance(child, jinja2.nodes.Block):
            branch = False
        else:
            branch = in_branch or isinstance(child, _BRANCHES)
        yield from _naming_tags(child, branch, overrides)


def _stand_in(*args: Any, **kwargs: Any) -> None:
    """Stand for a filter or test that the app adds later, while a template is checked."""


def compiles_once_added(env: jinja2.Environment, loader: jinja2.BaseLoader, name: str) -> bool:
    """Tell whether the template ``name`` lacks filters or tests that ``env`` has not yet.

    If so, it is compiled with stand-ins for them, and not kept: any other compile error is
    raised here, when ``Templates`` is made.
    """
    source, filename, _ = loader.get_source(env, name)
    tree = env.parse(source, name, filename)
    filters = {node.name for node in tree.find_all(jinja2.nodes.Filter)} - env.filters.keys()
    tests = {node.name for node in tree.find_all(jinja2.nodes.Test)} - env.tests.keys()
    if not filters and not tests:
        return False
    env.filters.update(dict.fromkeys(filters, _stand_in))
    env.tests.update(dict.fromkeys(tests, _stand_in))
    try:
        env.compile(source, name, filename)
    finally:
        for filter_name in filters:
            del env.filters[filter_name]
        for test_name in tests:
            del env.tests[test_name]
    return True


def check_names(
    env: jinja2.Environment,
    sources: Mapping[str, tuple[str, str | None]],
    compiled: frozenset[str],
    folders: list[str],
) -> None:
    """Stop the app (``ValueError``) at a literal name of no template in a tag every render of
    a template runs; log a warning for one in a branch."""
    # NOTE: a misspelled {% extends "bse.html" %} was found at the first render (as in
    # Flask): a 500, under stream() a 200 cut off. Every template is compiled now, so a
    # name that is none of them is never found.
    # PERF: parsed only where the text names such a tag: 100 pages that extend a base
    # (a loop, a filter, url_for) took 221 ms to read and compile, 251 ms with this check
    # (best of 7, 2026-12-05).
    for name in compiled:
        source = sources.get(name, ("", None))[0]
        if not any(word in source for word in ("extends", "include", "import")):
            continue
        always, branched = _unfound(env, compiled, name, source)
        if always:
            raise ValueError(
                f"template {always[0]}, which is not in {folders}: names are relative to "
                "the template folders, and a hidden file is no template"
            )
        for where, verb in branched:
            # NOTE: Jinja renders the page while the branch is not taken (an optional
            # part, a theme's override): it stopped the app, as one every render runs.
            advice = (
                ": for an optional template, write 'ignore missing' after its name"
                if verb == "includes"
                else ""
            )
            logger.warning(
                "template %s in a branch, which is not in %s: rendering the branch raises "
                "TemplateNotFound%s",
                where,
                folders,
                advice,
            )
