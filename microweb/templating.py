"""Jinja2 templates that answer HTML responses (the optional extra ``microweb[jinja]``).

Every template of the directory is read and compiled when ``Templates`` is made, so a syntax
error stops the app before its first request, and ``render`` never touches the disk: it is
CPU work only, like encoding JSON, and safe to call in ``async def`` handlers (on the event
loop under ASGI, on the app's loop under WSGI).
"""

from __future__ import annotations

import functools
import os
from collections.abc import (
    Callable,
    Coroutine,
    Iterable,
    Iterator,
    Mapping,
    MutableMapping,
    Sequence,
)
from types import FrameType
from typing import TYPE_CHECKING, Any

try:
    import jinja2
    import jinja2.meta
    import jinja2.nodes
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "microweb.templating needs Jinja2: pip install jinja2 (microweb's 'jinja' extra)"
    ) from exc

from ._media import HTML
from ._response import Response
from ._routing import check_arguments, is_async_callable, is_generator_callable
from ._template_names import check_names, compiles_once_added, hidden, servable
from .plugins.flashes import get_flashed_messages
from .plugins.flashes import take_now as take_flashes_now

if TYPE_CHECKING:
    from ._request import Request

__all__ = ["Templates"]


Directory = str | bytes | os.PathLike[str] | os.PathLike[bytes]
ContextProcessor = Callable[["Request"], Mapping[str, Any]]


def _processors(given: Iterable[ContextProcessor]) -> tuple[ContextProcessor, ...]:
    if callable(given):
        raise TypeError(f"context_processors takes a list of functions: [{given!r}]")
    processors = tuple(given)
    for processor in processors:
        if is_generator_callable(processor):
            # NOTE: taken, every render() failed ("returned generator, not a mapping").
            raise TypeError(
                f"context processor {processor!r} is a generator function: return the dict "
                "of template variables"
            )
        if not callable(processor) or is_async_callable(processor):
            raise TypeError(
                f"context processor {processor!r} must be a def function called with the "
                "request: render() is synchronous, so it can't await an async def one"
            )
        # NOTE: Flask's processors take no argument; taken, every render() failed (review140).
        check_arguments(processor, f"context processor {processor!r}", "(request)")
    return processors


def _processed(processor: ContextProcessor, request: Request) -> Mapping[str, Any]:
    variables = processor(request)
    if isinstance(variables, Coroutine):
        # NOTE: a def one around an async call (a lambda): left open, the coroutine was also
        # reported "never awaited", by the garbage collector, at some later line.
        variables.close()
        raise TypeError(
            f"context processor {processor!r} returned a coroutine, which render() can't "
            "await: it is synchronous; make the processor a def function that returns a mapping"
        )
    if not isinstance(variables, Mapping):
        raise TypeError(
            f"context processor {processor!r} returned {type(variables).__name__}, not a "
            "mapping of template variables"
        )
    _check_names(variables, f"context processor {processor!r}")
    return variables


def _check_names(variables: Mapping[Any, Any], given_by: str) -> None:
    """Raise ``TypeError`` if a key of ``variables``, which ``given_by`` gave, is no string."""
    # NOTE: Jinja found it only as the page began ("keywords must be strings", naming no
    # variable): stream() then sent a 200 and cut it off, where a 500 was still to give.
    for name in variables:
        if not isinstance(name, str):
            raise TypeError(f"template variable names must be strings: {given_by} gave {name!r}")


class _CompiledLoader(jinja2.FileSystemLoader):
    """The folders' loader; once every template is compiled, it loads no other name.

    Jinja calls it on a cache miss only: for a name ``render()`` was given that was not
    compiled, and for one that a template includes, extends or imports, made at render time
    (``{% include name %}``). Both are refused here, the one place that decides.
    """

    def __init__(self, folders: list[str]) -> None:
        super().__init__(folders)
        self.compiled: frozenset[str] | None = None  # NOTE: None while compiling up front.
        # NOTE: each template's text and file as read up front, for stream()'s look at which
        # ones show flashed messages: read again, the first stream() of a page read its files
        # on the event loop in an async def handler.
        self.sources: dict[str, tuple[str, str]] = {}

    def get_source(
        self, environment: jinja2.Environment, template: str
    ) -> tuple[str, str, Callable[[], bool]]:
        kept = self.sources.get(template)
        if kept is not None and self.compiled is not None and not environment.auto_reload:
            # NOTE: a template that uses a filter the app adds later is compiled at its first
            # render (see compiles_once_added): read again then, on the event loop in an async
            # def handler, a release unpacked over the folder since made it a 500 or a newer
            # page among older ones. Its text read up front is the one compiled.
            return kept[0], kept[1], _current
        source, filename, uptodate = super().get_source(environment, template)
        if self.compiled is None:
            self.sources[template] = (source, filename)
        return source, filename, uptodate

    def load(
        self,
        environment: jinja2.Environment,
        name: str,
        globals: MutableMapping[str, Any] | None = None,
    ) -> jinja2.Template:
        if self.compiled is not None and not servable(environment, self.compiled, name):
            raise jinja2.TemplateNotFound(name)
        return super().load(environment, name, globals)


def _current() -> bool:
    """Tell Jinja that a template's text read up front is up to date: it always is."""
    return True


# NOTE: what render() adds to every context; Flask has them as Jinja globals.
_REQUEST_NAMES = ("request", "url_for", "get_flashed_messages")


class _RequestTemplate(jinja2.Template):
    """A template whose renders pass the request's names on as globals.

    A template imported without context (``{% import "macros.html" as m %}``, ``{% from ...
    import %}``) sees the importer's globals only, not its variables: a macro that calls
    ``url_for`` found it undefined. Jinja gives an import the globals that the importing
    context has beyond the template's own, so here they are.
    """

    def new_context(
        self,
        vars: dict[str, Any] | None = None,
        shared: bool = False,
        locals: Mapping[str, Any] | None = None,
    ) -> jinja2.runtime.Context:
        # PERF: an import then makes its module on each render instead of once: no change seen
        # for a page that imports a macro file at its top (~170 us, 20 macro calls), ~10 us
        # more per import run inside a loop (`{% from %}` in a for loop of 20: 176 -> 381 us).
        found = {name: vars[name] for name in _REQUEST_NAMES if name in vars} if vars else None
        # NOTE: a copy, never the template's own dict: it is shared by concurrent renders.
        names = {**self.globals, **found} if found else self.globals
        return jinja2.runtime.new_context(
            self.environment, self.name, self.blocks, vars, shared, names, locals
        )


class Templates:
    """A Jinja2 environment over a directory of templates, with autoescaping on.

    Every value put into a template with ``{{ ... }}`` is HTML-escaped, whatever the
    template's file name, and in templates made from strings (``templates.env.from_string``)
    too; ``|safe`` or ``markupsafe.Markup`` mark a value that is HTML already.

    Args:
        directory: The folder that holds the templates (``str``, ``bytes`` or a path
            object), or a list of folders searched in order. Names are paths relative to it
            with ``/``: ``"notes/list.html"``.
        context_processors: Functions called with the request on each ``render``, in order;
            each returns a mapping of variables every template sees (the signed-in user, say),
            as Flask's ``@app.context_processor`` and Starlette's ``context_processors``.
        **env_options: Passed to ``jinja2.Environment`` (``trim_blocks``, ``undefined``,
            ``extensions``...). Defaults that differ from Jinja's: ``autoescape=True``,
            ``auto_reload=False`` (pass ``True`` in development to pick up edited files),
            ``cache_size=-1`` (every compiled template stays cached; another value is a
            ``ValueError``).

    Raises:
        TypeError: If a ``loader`` is given: the templates are the directory's; or a context
            processor is not a ``def`` function (``render`` is synchronous) or is a generator
            function, or one is given alone instead of in a list.
        FileNotFoundError: If a directory does not exist, or is a file.
        ValueError: If ``directory`` is an empty list, or ``enable_async=True`` is given:
            ``render`` is synchronous; or a ``cache_size`` other than -1; or if a file of the
            folders is not UTF-8 text (every file is compiled as a template), or a template
            extends, includes or imports by a literal name one that is not in the folders,
            where every render does (in a branch, ``{% if %}``, ``{% for %}``, a macro, a
            warning is logged on the ``"microweb"`` logger instead; a ``{% block %}`` of a
            template that extends is no branch: its base renders it).
        jinja2.TemplateSyntaxError: If a template does not compile, for another reason than
            a filter or test that ``env`` lacks: such a template is compiled on its first
            render, once the app has added them.

    Attributes:
        env: The ``jinja2.Environment``: add filters, tests and globals to it before the
            first render.
    """

    def __init__(
        self,
        directory: Directory | Sequence[Directory],
        *,
        context_processors: Iterable[ContextProcessor] = (),
        **env_options: Any,
    ) -> None:
        self.context_processors = _processors(context_processors)
        self._flash_pages: dict[str, bool] = {}
        given = [directory] if isinstance(directory, (str, bytes, os.PathLike)) else directory
        # NOTE: fsdecode, as Static does: a bytes folder was iterated as a list of ints ("expected
        # str, bytes or os.PathLike object, not int"), and a bytes path-like one failed in
        # Jinja's loader, joined with str names.
        folders = [os.fsdecode(folder) for folder in given]
        if not folders:
            # NOTE: accepted, every render was a TemplateNotFound, far from the mistake.
            raise ValueError("Templates needs a template folder; it was given an empty list")
        for folder in folders:
            if not os.path.isdir(folder):
                # NOTE: a file given for the folder was said not to exist.
                what = "is a file, not a folder" if os.path.exists(folder) else "does not exist"
                raise FileNotFoundError(f"template directory {folder!r} {what}")
        if "loader" in env_options:
            raise TypeError(
                "Templates makes its loader from directory; pass a list of folders to search "
                "several, or make a jinja2.Environment of your own for another loader"
            )
        if env_options.get("enable_async"):
            raise ValueError(
                "Templates renders synchronously (templates are compiled up front, so rendering "
                "does no I/O); leave enable_async off"
            )
        if env_options.get("cache_size", -1) != -1:
            # NOTE: with fewer slots than templates, an evicted one was read from disk again at
            # render time, on the event loop under ASGI (review156).
            raise ValueError(
                "Templates keeps every template compiled (cache_size=-1), so that render() "
                "reads no file; leave cache_size out"
            )
        options: dict[str, Any] = {"autoescape": True, "auto_reload": False, "cache_size": -1}
        options.update(env_options)
        loader = _CompiledLoader(folders)
        self.env = jinja2.Environment(loader=loader, **options)
        self.env.template_class = _RequestTemplate
        self._loader = loader
        loader.compiled = self._compile_all(loader, folders)

    def _compile_all(self, loader: _CompiledLoader, folders: list[str]) -> frozenset[str]:
        # PERF: reading and compiling a two-file page costs ~2 ms, a cached lookup ~0.5 us
        # (docs/templates.md): done here, the first request on an event loop pays nothing.
        names = [name for name in self.env.list_templates() if not hidden(name)]
        for name in names:
            try:
                self.env.get_template(name)
            except UnicodeDecodeError as exc:
                # NOTE: an image or other binary file kept beside the templates; Jinja's
                # own error does not say which file.
                raise ValueError(
                    f"template {name!r} in {folders} is not UTF-8 text: keep only templates "
                    "in the template folders"
                ) from exc
            except jinja2.TemplateNotFound as exc:
                # NOTE: listed, yet no file to read: a link to nothing, a FIFO or a socket.
                # Jinja's "not found in search path" sent one looking for a file that is there.
                raise ValueError(
                    f"template {name!r} in {folders} is listed but can't be read as a file "
                    "(a broken link, a FIFO or a socket?): keep only templates in the "
                    "template folders"
                ) from exc
            except jinja2.TemplateAssertionError:
                # NOTE: Jinja checks filter and test names as it compiles, and the app can add
                # its own to self.env only once this returns (Flask's template_filter): such a
                # template is compiled on its first render instead, as Jinja would; checked
                # now with stand-ins, so that its other errors still stop the app here.
                if not compiles_once_added(self.env, loader, name):
                    raise
        compiled = frozenset(names)
        check_names(self.env, loader.sources, compiled, folders)
        return compiled

    def render(
        self,
        request: Request,
        name: str,
        context: Mapping[str, Any] | None = None,
        *,
        status: int = 200,
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        """Render the template ``name`` as a ``text/html; charset=utf-8`` response.

        The template sees ``request``, ``url_for`` (``request.url_for``: paths with the
        app's root path) and ``get_flashed_messages`` (``microweb.plugins``' own, for this
        request), then what the context processors return, then the ``context``; a later
        one wins over an earlier one with the same name. Those three
        also reach macro files the template imports without context, as in Flask.

        Args:
            request: The request being answered.
            name: The template's name, relative to the directory.
            context: The template's variables.
            status: The status code.
            headers: Extra headers; a ``content-type`` among them replaces ``text/html`` as it
                is given (say ``charset=utf-8`` in it: the text is sent as UTF-8).

        Raises:
            jinja2.TemplateNotFound: If ``name`` is not one of the templates compiled when
                ``Templates`` was made, spelled as they were (with ``auto_reload=True``, also
                a file added since, neither hidden nor spelled another way). Unless the app
                catches it, a 500 that is logged.
        """
        variables = self._variables(request, context)
        try:
            html = self.env.get_template(name).render(variables)
        except Exception as exc:
            _let_go(exc)
            raise
        return Response.html(html, status, headers)

    def stream(
        self,
        request: Request,
        name: str,
        context: Mapping[str, Any] | None = None,
        *,
        status: int = 200,
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        """Render the template ``name`` as it is sent: a streamed ``text/html; charset=utf-8``
        response, as Flask's ``stream_template``.

        The template sees what ``render()`` gives it. The context processors run and the
        template is found now; the template runs as the response is sent, its output sent in
        pieces of about ``STREAM_PIECE`` characters. An error while it runs cuts the response
        off (its status and first pieces are sent already) and is logged.

        Args:
            request: The request being answered.
            name: The template's name, relative to the directory (or a ``jinja2.Template``,
                as ``render()`` takes one).
            context: The template's variables.
            status: The status code.
            headers: Extra headers; a ``content-type`` among them replaces ``text/html`` as it
                is given (say ``charset=utf-8`` in it: the text is sent as UTF-8).

        Raises:
            jinja2.TemplateNotFound: As ``render()`` does; raised here, before the response
                starts, and so is what a context processor raises.
        """
        variables = self._variables(request, context)
        template = self.env.get_template(name)
        # NOTE: the template's own name: a Template object, which render() takes as Jinja does,
        # failed here with "'Template' object has no attribute 'split'" (review156). One made
        # from a string has none, and no file to look into: it counts as one that shows them,
        # as a name made as the page runs does (taken for one that did not, the messages it
        # showed stayed in the session, shown again on every page).
        if template.name is None or self._shows_flashes(template.name):
            # NOTE: the session's cookie is sent before the template runs: the messages it
            # read then were shown on every later page, never taken from the session.
            take_flashes_now(request)
        return Response.stream(_pieces(template, variables), HTML, status, headers)

    def _shows_flashes(self, name: str) -> bool:
        """Tell whether the template ``name``, or one it extends, includes or imports, calls
        ``get_flashed_messages``."""
        shows = self._flash_pages.get(name)
        if shows is None:
            shows = self._calls(name, "get_flashed_messages", set())
            if not self.env.auto_reload:
                # PERF: parsed on its first stream() only (its text kept from the compile up
                # front): ~3.5 ms for a two-file page of 200 values, read included, then ~2 us.
                self._flash_pages[name] = shows
        return shows

    def _calls(self, name: str, function: str, seen: set[str]) -> bool:
        if name in seen:
            return False
        seen.add(name)
        found = self._source(name)
        if found is None:
            return False  # NOTE: `{% include ... ignore missing %}`; else render time says so.
        source, filename = found
        # PERF: the text is looked at first: Jinja parses ~4 ms per 100 values here.
        if function in source:
            return True  # NOTE: a comment naming it too, which takes the messages in vain.
        if not any(word in source for word in ("extends", "include", "import")):
            return False
        try:
            tree = self.env.parse(source, name, filename)
        except jinja2.TemplateSyntaxError:
            return False  # NOTE: not one compiled up front (a hidden file): rendering says so.
        # NOTE: None for a name made as the page runs ({% include page %}): any could.
        return any(
            other is None or self._calls(other, function, seen)
            for other in jinja2.meta.find_referenced_templates(tree)
        )

    def _source(self, name: str) -> tuple[str, str | None] | None:
        """Return the text and file name of the template ``name``, or ``None`` if it has none:
        as read up front, or from disk now with ``auto_reload=True``."""
        if not self.env.auto_reload:
            return self._loader.sources.get(name)
        try:
            source, filename, _ = self._loader.get_source(self.env, name)
        except jinja2.TemplateNotFound:
            return None
        return source, filename

    def _variables(self, request: Request, context: Mapping[str, Any] | None) -> dict[str, Any]:
        if isinstance(request, str):
            # NOTE: Starlette's and Flask's order, the name first ("'str' object has no
            # attribute 'url_for'" said nothing of it).
            raise TypeError(
                f"Templates takes the request first, then the name: "
                f"render(request, {request!r}, {{...}}), not render({request!r}, ...)"
            )
        variables: dict[str, Any] = {
            "request": request,
            "url_for": request.url_for,
            # NOTE: Flask's template global, bound to the request: templates ported from
            # Flask call it as they are. Sessions is needed only when a template calls it.
            "get_flashed_messages": functools.partial(get_flashed_messages, request),
        }
        for processor in self.context_processors:
            variables.update(_processed(processor, request))
        if context:
            variables.update(context)
            _check_names(variables, "the context")
        return variables


# NOTE: Jinja yields each piece of text and each value apart (a few characters each); sent so,
# a page would take a write (WSGI) or a hop from the pool's thread to the loop (ASGI) each.
STREAM_PIECE = 8192


def _pieces(template: jinja2.Template, variables: dict[str, Any]) -> Iterator[str]:
    """Yield the template's output in pieces of about ``STREAM_PIECE`` characters."""
    waiting: list[str] = []
    size = 0
    try:
        for text in template.generate(variables):
            waiting.append(text)
            size += len(text)
            if size >= STREAM_PIECE:
                yield "".join(waiting)
                waiting.clear()
                size = 0
    except Exception as exc:
        _let_go(exc)
        raise
    if waiting:
        yield "".join(waiting)


def _let_go(error: BaseException) -> None:
    """Break the reference cycles that Jinja's rewritten traceback of ``error`` makes.

    The traceback keeps its template frames (the logged 500 still names the template's file
    and line); only what refers back to the error is let go.
    """
    # NOTE: Jinja (3.1) re-raises an error from a template with frames of its own making, one a
    # template frame: each holds the error in its globals ("__jinja_exception__"), and its
    # f_back, Jinja's finished frames that built it, hold the error and the first traceback.
    # A cycle: every render that raised kept its request, its context and the template's
    # variables until a full collection (52 to 75 objects a request).
    tb = error.__traceback__
    while tb is not None:
        frame = tb.tb_frame
        if frame.f_globals.get("__jinja_exception__") is error:
            del frame.f_globals["__jinja_exception__"]
            _clear_finished(frame.f_back)
        tb = tb.tb_next


def _clear_finished(frame: FrameType | None) -> None:
    """Clear the locals of ``frame`` and of its callers, up to the first one still running."""
    while frame is not None:
        try:
            frame.clear()
        except RuntimeError:
            return  # NOTE: a frame still running (render()'s caller): it and callers stay.
        frame = frame.f_back
