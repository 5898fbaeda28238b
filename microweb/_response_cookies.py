"""The cookie methods of ``Response``: ``set_cookie`` and ``delete_cookie``, which add the
``Set-Cookie`` lines that ``_cookies`` formats to its headers."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from ._cookies import SameSite, format_set_cookie

if TYPE_CHECKING:
    from ._datastructures import Headers


class CookieMethods:
    """The cookie methods of ``Response``, which add to its headers."""

    # NOTE: the slots are Response's, as Request's mixins leave theirs to Request.
    __slots__ = ()

    if TYPE_CHECKING:

        @property
        def headers(self) -> Headers: ...

    def set_cookie(
        self,
        key: str,
        value: str = "",
        *,
        max_age: int | timedelta | None = None,
        expires: str | datetime | None = None,
        path: str | None = "/",
        domain: str | None = None,
        secure: bool = False,
        httponly: bool = False,
        samesite: SameSite | None = "lax",
        partitioned: bool = False,
    ) -> None:
        """Add a ``Set-Cookie`` header; the value and the path are percent-encoded.

        Args:
            key: The cookie's name.
            value: Any ``str``.
            max_age: Seconds until the cookie expires, or a ``timedelta`` (a fraction of a
                second is rounded up); ``0`` drops it.
            expires: The moment it expires: an HTTP date, or a ``datetime`` (naive is UTC).
            path: The path under which the browser sends it back; ``""`` is ``/`` (so
                ``path=request.root_path`` works at the root too); ``None`` sends no ``Path``.
            domain: A host name the cookie is shared with, subdomains included.
            secure: Sent over HTTPS only.
            httponly: Hidden from the page's scripts.
            samesite: ``"lax"``, ``"strict"``, ``"none"`` or ``None`` (no attribute).
            partitioned: Kept apart for each top-level site (CHIPS), for a cookie that a
                page embedded in other sites sets.

        Raises:
            TypeError: If ``value`` is neither a ``str`` nor ``bytes``, ``max_age`` not a
                number (a ``bool`` is none here) or a ``timedelta``, ``expires`` neither a
                ``str`` nor a ``datetime``, or ``path`` or ``domain`` not a ``str``.
            ValueError: If the name is not a token or is an attribute's, ``path`` does not
                start with ``/``, ``domain`` is not a host name, ``expires`` holds ``;``,
                ``=`` or a line break, or browsers would drop the cookie:
                ``samesite="none"``, ``partitioned=True`` or a ``__Secure-`` or ``__Host-``
                name without ``secure=True``, a ``__Host-`` one with a ``domain`` or another
                path than ``/``.
        """
        self.headers.add(
            "set-cookie",
            format_set_cookie(
                key,
                value,
                max_age=max_age,
                expires=expires,
                path=path,
                domain=domain,
                secure=secure,
                httponly=httponly,
                samesite=samesite,
                partitioned=partitioned,
            ),
        )

    # NOTE: set_cookie's attribute parameters are spelt out again, not taken as **attributes
    # (a TypedDict): the reference and mypy then show each with its type and its default
    # (review382).
    def delete_cookie(
        self,
        key: str,
        *,
        path: str | None = "/",
        domain: str | None = None,
        secure: bool = False,
        httponly: bool = False,
        samesite: SameSite | None = "lax",
        partitioned: bool = False,
    ) -> None:
        """Tell the client to drop the cookie ``key``.

        Give the attributes it was set with: browsers ignore the deletion of a
        ``samesite="none"`` cookie in a cross-site frame unless the deletion says ``"none"``
        too, and that of a partitioned cookie without ``partitioned=True``. Raises
        ``ValueError`` as ``set_cookie`` does.
        """
        self.set_cookie(
            key,
            "",
            max_age=0,
            expires="Thu, 01 Jan 1970 00:00:00 GMT",
            path=path,
            domain=domain,
            secure=secure,
            httponly=httponly,
            samesite=samesite,
            partitioned=partitioned,
        )
