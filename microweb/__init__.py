"""microweb: write the app once, serve it under WSGI or ASGI."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, NoReturn

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
    # NOTE: hidden from type checkers, which would read every unknown name of the module
    # as this function's return type: `from microweb import jsonify` is still an error there.

    def __getattr__(name: str) -> NoReturn:
        """Refuse ``name``, saying what to write when it is another framework's (PEP 562)."""
        from dis import opmap

        from ._other_names import refuse_module_name

        # NOTE: `from microweb import name` asks with the IMPORT_FROM instruction and turns
        # an AttributeError into its own "cannot import name", whose message names no
        # advice on any Python from 3.10 to 3.13: an ImportError, raised here, goes through.
        # An AttributeError for every other reader: hasattr() and getattr(..., default).
        caller = sys._getframe(1)
        importing = caller.f_code.co_code[caller.f_lasti] == opmap["IMPORT_FROM"]
        del caller
        refuse_module_name(sys.modules[__name__], name, importing)
