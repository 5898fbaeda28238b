"""The flows around a WebSocket handshake (``dispatch_handshake``), and around its refusal where
no route takes it (``refuse_handshake``): the headers they set on the 101 kept for ``accept()``
(``HANDSHAKE_HEADERS``), or the response a flow answered with, which refuses it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ._calls import refusal
from ._effects import Colored, Effects
from ._emission import close_replaced
from ._errors import HTTPError
from ._errors import refused as router_refusal
from ._flow_closing import own_exit_out
from ._flows import Flows, through_flows
from ._response import Response

if TYPE_CHECKING:
    from ._plan import Plan
    from ._request import Request


def dispatch_handshake(plan: Plan, request: Request) -> Effects:
    """Run the flows around a WebSocket handshake.

    Returns:
        ``None`` to accept (with the headers the flows set, in ``request.state``), or the
        ``Response`` a flow answered with instead, which refuses the handshake.
    """
    handshake = Response(b"")
    # NOTE: the status flows see on an accepted handshake; set past the check, which refuses a
    # 1xx from an app, since the server sends this one itself.
    handshake._status = 101
    flows: Flows = plan.flows
    route = request.route
    if route is not None and route.skip:
        flows = _not_skipped(plan, route.skip)
    rules = plan.router_rules.get(id(route)) if plan.router_rules else None
    if rules is not None and rules.flows:
        # NOTE: a router's flows inside the app's, as around its HTTP routes: its auth flow
        # was skipped for its WebSocket routes, which it was there to guard.
        flows = [*flows, *rules.flows]
    response = yield from through_flows(plan, request, flows, lambda: _accept(handshake))
    # NOTE: by its status, not by identity: each flow passes on a copy (see _finish), and an
    # app's Response cannot have a 1xx.
    if response._status != 101:
        # NOTE: never sent (plain ASGI can only refuse): a stream of it is closed all the same.
        close_replaced(request, response, None)
        return response
    setattr(request.state, HANDSHAKE_HEADERS, response.headers)
    return None


def refuse_handshake(plan: Plan, request: Request, refused: Exception | None) -> Effects:
    """Run the app's flows around the refusal of a WebSocket handshake no route takes.

    Args:
        plan: The app's plan.
        request: The handshake.
        refused: The error that refuses it (the 400 of a malformed path, a path converter's
            error), or ``None`` for a path with no WebSocket route: the 404 an HTTP request
            for it gets, which the error handlers answer.

    Returns:
        The response that refuses the handshake.
    """
    # NOTE: as an HTTP request's 404 goes through the flows: refused before them, the
    # handshake had no request ID, no security header, and no AccessLog line.
    # NOTE: the generator, not a closure over ``refused``: the error's traceback holds the
    # frame that holds the closure, a cycle that kept the request until a full collection.
    refusing = _refused_handshake(plan, request, refused)
    return through_flows(plan, request, plan.flows, lambda: refusing)


def _refused_handshake(plan: Plan, request: Request, refused: Exception | None) -> Effects:
    yield from ()  # NOTE: an effect generator like _endpoint, with no effects of its own.
    if refused is None:
        # NOTE: it was an empty 403 that no error handler saw (a 404 page's, a handler that
        # logs), where an HTTP request for the path gets its 404 through them.
        refused = router_refusal(404)
    elif request.path_is_valid or not isinstance(refused, HTTPError):
        try:
            raise refused  # NOTE: a converter's error, thrown in at the flows, as over HTTP.
        finally:
            del refused  # NOTE: no cycle through this frame and the traceback.
    # NOTE: the router's 404, or its 400 of a path that is not one, which the flows see as a
    # response, as over HTTP.
    answer = refusal(plan, request, refused, in_flows=True)
    return answer if isinstance(answer, Response) else (yield from own_exit_out(answer))


# NOTE: the attribute of request.state that holds the headers the flows set on a handshake's
# 101, for accept() and a refusal: a name no app can write as an attribute, since
# request.state is the app's. As "handshake_headers", an app's own dict there went out as
# response headers (request headers a handler kept there, on the refusal and on the 101).
HANDSHAKE_HEADERS = "microweb.handshake_headers"


def _not_skipped(plan: Plan, skip: Sequence[str]) -> list[Colored]:
    """The app's flows but those of the plugins a WebSocket route skips."""
    # NOTE: by identity: one function registered twice makes two equal Colored values.
    left_out = {id(flow) for name in skip for flow in plan.plugin_flows.get(name, ())}
    return [flow for flow in plan.flows if id(flow) not in left_out]


def _accept(handshake: Response) -> Effects:
    yield from ()  # NOTE: an effect generator like _endpoint, with no effects of its own.
    return handshake
