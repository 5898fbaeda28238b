"""The httpx clients of ``TestClient``'s two sides, which hand back a redirect they can't follow."""

from __future__ import annotations

from collections.abc import Callable

import httpx

# NOTE: in a request's extensions: whether its redirects are followed.
FOLLOWING = "microweb.following"


def _next_request(
    build: Callable[[httpx.Request, httpx.Response], httpx.Request],
    request: httpx.Request,
    response: httpx.Response,
) -> httpx.Request | None:
    """Return the request that follows ``response``'s redirect, or ``None`` where it is not
    followed and its ``Location`` is no URL httpx can build (``http:%5Cevil``, ``http://[::1``).

    httpx builds it even when it does not follow (``next_request``): its ``InvalidURL`` (or
    ``RemoteProtocolError``) came out of the call, and the test never got the response, whose
    ``Location`` may be the very thing it checks. Followed, it is raised as httpx raises it.
    """
    try:
        return build(request, response)
    except (httpx.InvalidURL, httpx.RemoteProtocolError):
        if request.extensions.get(FOLLOWING, True):
            raise
        return None


class SideClient(httpx.Client):
    """The WSGI side's httpx client: it hands back a redirect it can't follow (see
    ``_next_request()``)."""

    # NOTE: httpx's own step (private: checked on httpx 0.29), the one place where the request
    # of a redirect is built, followed or not.
    def _build_redirect_request(  # type: ignore[override]
        self, request: httpx.Request, response: httpx.Response
    ) -> httpx.Request | None:
        return _next_request(super()._build_redirect_request, request, response)


class AsyncSideClient(httpx.AsyncClient):
    """The ASGI side's httpx client, as ``SideClient``."""

    def _build_redirect_request(  # type: ignore[override]
        self, request: httpx.Request, response: httpx.Response
    ) -> httpx.Request | None:
        return _next_request(super()._build_redirect_request, request, response)
