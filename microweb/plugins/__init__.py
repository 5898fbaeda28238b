"""Built-in plugins, each written against the public plugin API only."""

from __future__ import annotations
