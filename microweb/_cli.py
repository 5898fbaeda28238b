"""The ``microweb`` command: serve an app with Uvicorn or Waitress, list its routes."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys
from collections.abc import Sequence

from ._app import App

SERVERS = {"uvicorn": "ASGI", "waitress": "WSGI"}


class TargetError(Exception):
    """The target named on the command line does not lead to an App."""


def load_app(target: str) -> App:
    """Import the app named by ``target``: ``module:attr``, ``module``, ``file.py[:attr]``.

    The attribute defaults to ``app``.

    Raises:
        TargetError: With a message that says what was not found.
    """
    location, _, attr = target.partition(":")
    attr = attr or "app"
    if location.endswith(".py") or os.sep in location:
        module = _import_file(location)
    else:
        sys.path.insert(0, os.getcwd())
        try:
            module = importlib.import_module(location)
        except ModuleNotFoundError as exc:
            raise TargetError(f"cannot import module {location!r}: {exc}") from None
    obj: object = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise TargetError(f"{location!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not isinstance(obj, App):
        raise TargetError(f"{target!r} is a {type(obj).__name__}, not a microweb App")
    return obj


def _import_file(path: str) -> object:
    if not os.path.isfile(path):
        raise TargetError(f"no such file: {path}")
    directory = os.path.dirname(os.path.abspath(path))
    sys.path.insert(0, directory)
    name = os.path.splitext(os.path.basename(path))[0]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise TargetError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def serve(app: App, server: str, host: str, port: int) -> None:
    """Serve ``app`` until interrupted.

    Raises:
        TargetError: If the server package is not installed (with the install command).
    """
    try:
        module = importlib.import_module(server)
    except ImportError:
        raise TargetError(
            f"the {server} server is not installed; install it with: "
            f"pip install 'microweb[{server}]'"
        ) from None
    print(f"microweb: serving on http://{host}:{port} with {server} ({SERVERS[server]})")
    if server == "uvicorn":
        module.run(app.as_asgi(), host=host, port=port)
    else:
        wsgi = app.as_wsgi()
        try:
            module.serve(wsgi, host=host, port=port)
        finally:
            wsgi.close()


def routes_table(app: App) -> str:
    """Return the route table as aligned text: method, template, name, handler, colour."""
    rows = [("METHOD", "TEMPLATE", "NAME", "HANDLER", "COLOUR")]
    routes = app.routes + app.websocket_routes
    for route in sorted(routes, key=lambda r: (r.template, r.kind, sorted(r.methods))):
        handler = f"{route.handler.__module__}.{getattr(route.handler, '__qualname__', '?')}"
        colour = "async" if route.is_async else "sync"
        methods = ["WS"] if route.kind == "websocket" else sorted(route.methods)
        for method in methods:
            rows.append((method, route.template, route.name, handler, colour))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="microweb", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve_cmd = commands.add_parser("serve", help="serve an app")
    serve_cmd.add_argument("target", help="module:app, module, or path/to/file.py[:app]")
    serve_cmd.add_argument("--server", choices=sorted(SERVERS), default="uvicorn")
    serve_cmd.add_argument("--host", default="127.0.0.1")
    serve_cmd.add_argument("--port", type=int, default=8000)
    routes_cmd = commands.add_parser("routes", help="print the route table of an app")
    routes_cmd.add_argument("target", help="module:app, module, or path/to/file.py[:app]")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    args = _parser().parse_args(argv)
    try:
        app = load_app(args.target)
        if args.command == "routes":
            print(routes_table(app))
        else:
            serve(app, args.server, args.host, args.port)
    except TargetError as exc:
        print(f"microweb: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0
    return 0
