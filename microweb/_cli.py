"""The ``microweb`` command: serve an app with Uvicorn or Waitress, list its routes."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys
from collections.abc import Sequence
from typing import Any

from ._app import App
from .plugins import ProxyHeaders

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
    if _would_shadow(name, os.path.abspath(path)):
        # NOTE: a file named like a module (json.py, http.py) must not replace that module.
        name = f"__microweb_target__{name}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise TargetError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _would_shadow(name: str, path: str) -> bool:
    if name in sys.modules:
        return True
    try:
        found = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return True
    return found is not None and found.origin != path


TARGET_VARIABLE = "MICROWEB_TARGET"
FORWARDED_VARIABLE = "MICROWEB_FORWARDED_ALLOW_IPS"


def trust_proxies(app: App, forwarded_allow_ips: str | None) -> None:
    """Install ``ProxyHeaders`` trusting the comma-separated addresses and ranges, if any.

    Raises:
        TargetError: If an entry is not an address or a range, or the app has the plugin.
    """
    if forwarded_allow_ips is None:
        return
    trusted = [entry.strip() for entry in forwarded_allow_ips.split(",") if entry.strip()]
    try:
        app.install(ProxyHeaders(trusted))
    except ValueError as exc:
        raise TargetError(f"--forwarded-allow-ips: {exc}") from None


def asgi_from_environment() -> Any:
    """Build the ASGI app named by ``$MICROWEB_TARGET`` (Uvicorn's factory for workers/reload)."""
    app = load_app(os.environ[TARGET_VARIABLE])
    trust_proxies(app, os.environ.get(FORWARDED_VARIABLE))
    return app.as_asgi()


def serve(
    target: str,
    server: str,
    host: str,
    port: int,
    workers: int = 1,
    reload: bool = False,
    forwarded_allow_ips: str | None = None,
) -> None:
    """Serve the app named by ``target`` until interrupted.

    The servers' own handling of forwarded headers is off: ``forwarded_allow_ips`` (addresses
    and CIDR ranges, comma-separated) installs ``ProxyHeaders``, which works the same under
    both; without it, no forwarded header is trusted.

    Raises:
        TargetError: If the target is not an App, the server package is not installed (the
            message gives the install command), or an option does not fit the server.
    """
    try:
        module = importlib.import_module(server)
    except ImportError:
        raise TargetError(
            f"the {server} server is not installed; install it with: "
            f"pip install 'microweb[{server}]'"
        ) from None
    if server == "waitress" and (workers != 1 or reload):
        raise TargetError("--workers and --reload are for uvicorn; waitress runs one process")
    app = load_app(target)
    trust_proxies(app, forwarded_allow_ips)
    print(f"microweb: serving on http://{host}:{port} with {server} ({SERVERS[server]})")
    if server == "uvicorn" and (workers != 1 or reload):
        # NOTE: worker processes and the reloader import the app anew, from a string.
        os.environ[TARGET_VARIABLE] = target
        if forwarded_allow_ips is not None:
            os.environ[FORWARDED_VARIABLE] = forwarded_allow_ips
        module.run(
            "microweb._cli:asgi_from_environment",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            reload=reload,
            reload_dirs=[_source_dir(target)] if reload else None,
            proxy_headers=False,
        )
    elif server == "uvicorn":
        # NOTE: Uvicorn trusts X-Forwarded-* from 127.0.0.1 by default; ProxyHeaders decides.
        module.run(app.as_asgi(), host=host, port=port, proxy_headers=False)
    else:
        wsgi = app.as_wsgi()
        try:
            # NOTE: with lookahead Waitress reads the socket during a request, so it can tell
            # the app that the client left (request.is_disconnected()). Waitress deletes
            # forwarded headers by default: the app gets them, as under Uvicorn.
            module.serve(
                wsgi,
                host=host,
                port=port,
                channel_request_lookahead=1,
                clear_untrusted_proxy_headers=False,
            )
        finally:
            wsgi.close()


def _source_dir(target: str) -> str:
    location = target.partition(":")[0]
    if location.endswith(".py") or os.sep in location:
        return os.path.dirname(os.path.abspath(location))
    return os.getcwd()


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
    serve_cmd.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    serve_cmd.add_argument("--reload", action="store_true", help="restart on code changes")
    serve_cmd.add_argument(
        "--forwarded-allow-ips",
        metavar="IPS",
        help="trust forwarded headers from these comma-separated addresses and CIDR ranges",
    )
    routes_cmd = commands.add_parser("routes", help="print the route table of an app")
    routes_cmd.add_argument("target", help="module:app, module, or path/to/file.py[:app]")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "routes":
            print(routes_table(load_app(args.target)))
        else:
            serve(
                args.target,
                args.server,
                args.host,
                args.port,
                args.workers,
                args.reload,
                args.forwarded_allow_ips,
            )
    except TargetError as exc:
        print(f"microweb: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0
    return 0
