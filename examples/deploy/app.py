"""The app that the deployment examples serve: a page, a health check, a shutdown hook.

Run it as the container does (from this folder):

    microweb serve app:app --host 0.0.0.0 --port 8000 --graceful-timeout 5
"""

from __future__ import annotations

import logging
import os

from microweb import App, Request
from microweb.plugins import AccessLog, RequestID, TrustedHosts

app = App()
app.install(AccessLog())  # first: the outermost flow times the others
app.install(RequestID())
# The host names this app answers for, as a comma-separated list: your domain in production
# (ALLOWED_HOSTS=example.com,www.example.com), and the address the health check connects to.
app.install(TrustedHosts(os.environ.get("ALLOWED_HOSTS", "localhost,127.0.0.1").split(",")))
logger = logging.getLogger("microweb.example")


@app.on_startup
def ready() -> None:
    """Open what the app needs (a database pool, say) before the first request."""
    app.state.healthy = True


@app.on_shutdown
def goodbye() -> None:
    """Close it again; `microweb serve` runs this on SIGTERM, after requests in flight end."""
    app.state.healthy = False
    logger.warning("shutdown hooks ran")


@app.get("/")
def index(request: Request) -> str:
    """Say hello, with the URL the client used (behind the proxy too)."""
    return f"Hello from {request.url}"


@app.get("/healthz")
def health(request: Request) -> dict[str, bool]:
    """Answer the load balancer's health check."""
    return {"healthy": bool(getattr(request.app.state, "healthy", False))}
