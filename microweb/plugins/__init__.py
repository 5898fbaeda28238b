"""Built-in plugins, each written against the public plugin API only.

Install them with ``app.install(...)``: ``CORS``, ``GZip``, ``Static``, ``Sessions``,
``RequestID``, ``AccessLog``, ``ProxyHeaders``, ``TrustedHosts`` and ``CSRF``. Next to
``Sessions``, two functions keep one-time messages in the session: ``flash(request, message)``
and ``get_flashed_messages(request)``.
"""

from __future__ import annotations

from .cors import CORS
from .csrf import CSRF
from .flashes import flash, get_flashed_messages
from .gzip import GZip
from .proxy import ProxyHeaders
from .requestid import AccessLog, RequestID
from .sessions import Sessions
from .static import Static
from .trustedhosts import TrustedHosts

__all__ = [
    "CORS",
    "CSRF",
    "AccessLog",
    "GZip",
    "ProxyHeaders",
    "RequestID",
    "Sessions",
    "Static",
    "TrustedHosts",
    "flash",
    "get_flashed_messages",
]

for _name in __all__:
    globals()[_name].__module__ = "microweb.plugins"
del _name
