"""microweb: write the app once, serve it under WSGI or ASGI."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._app import App
from ._datastructures import Headers, MultiDict
from ._errors import ClientDisconnect, HTTPError, InterfaceWarning
from ._forms import FormData
from ._limits import Limits
from ._plugins import Plugin
from ._request import Request
from ._response import Response
from ._router import Router
from ._routing import Route
from ._sse import ServerSentEvent
from ._streamed_parts import Part
from ._uploads import UploadFile, safe_filename
from ._websocket import WebSocket, WebSocketDisconnect

__all__ = [
    "App",
    "ClientDisconnect",
    "HTTPError",
    "Headers",
    "InterfaceWarning",
    "Limits",
    "FormData",
    "MultiDict",
    "Part",
    "Plugin",
    "Request",
    "Response",
    "Route",
    "Router",
    "ServerSentEvent",
    "UploadFile",
    "WebSocket",
    "WebSocketDisconnect",
    "safe_filename",
]
__version__ = "0.1.0"

for _name in __all__:
    globals()[_name].__module__ = "microweb"
del _name

if not TYPE_CHECKING:
    # NOTE: PEP 562, for another framework's name (`from microweb import jsonify`); hidden
    # from type checkers, which would read every unknown name of the module as what it
    # returns: there, such an import is still an error.
    from . import _other_names

    __getattr__ = _other_names.module_getattr

# NOTE: dir(microweb) as it was.
del TYPE_CHECKING
