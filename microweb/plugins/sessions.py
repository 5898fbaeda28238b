"""Sessions kept in a signed cookie: ``request.session`` is a dict that survives requests.

A cookie holds ``payload.timestamp.signature``: the session as base64url JSON, the time it was
signed (seconds since the epoch), and HMAC-SHA256 over both, with a key derived from the secret
and the cookie's name. The session is readable by the client (signed, not encrypted): keep
secrets out of it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Generator, Iterable, Iterator
from datetime import timedelta
from typing import Any, Literal

from microweb import App, Request, Response
from microweb._cookies import (
    MAX_COOKIE_PAIR,
    cookie_values,
    encode_cookie_value,
    max_age_seconds,
)
from microweb._percent import percent_decode

from ._session_json import (
    decode_session,
    encode_session,
    keys_are_str,
    nests_too_deep,
    refuse_too_deep,
    refuse_unstorable,
)
from ._vary import add_vary

SameSite = Literal["lax", "strict", "none"]
MIN_SECRET_SIZE = 16
# NOTE: keys are derived for this one purpose and one cookie name, so a secret shared with other
# code signs nothing that code would accept, and the reverse; and a session of one cookie name
# (a user's "session") is no session of another ("admin_session") under the same secret.
KEY_CONTEXT = b"microweb.plugins.sessions"
# NOTE: how many cookies of the session's name are tried, in the order sent (see _valid):
# a few cover a stale one on another path and one planted on the parent domain, while each try
# is an HMAC per key, and the flow runs on the event loop under ASGI (17,000 of them in a
# 256 KiB header took 140 ms with two keys).
MAX_TRIED_COOKIES = 8
# NOTE: how long a session lives after its last change, by default; with max_age=None, the age
# past which a signed value is refused all the same (see Sessions).
DEFAULT_MAX_AGE = 14 * 24 * 3600
# SPEC: draft-ietf-httpbis-rfc6265bis 5.5: browsers cap a cookie's lifetime at 400 days. A
# longer max_age only kept the server accepting a signature the browser had dropped: 10**30
# made a cookie copied off a machine good for ever.
MAX_LIFETIME = 400 * 24 * 3600
# NOTE: how far ahead of this server's clock a signature may be dated: the clocks of servers
# behind one load balancer differ by seconds. A cookie dated further ahead was signed by a clock
# set wrong, and without this bound it lived its max_age past that date (itsdangerous refuses
# any signature from the future).
MAX_CLOCK_SKEW = 60

Flow = Generator[Response | None, Response, None]
Secret = str | bytes


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _derive(secret: Secret, cookie_name: str) -> bytes:
    raw = _secret_bytes(secret) if isinstance(secret, str) else secret
    if len(raw) < MIN_SECRET_SIZE:
        raise ValueError(
            f"a session secret needs at least {MIN_SECRET_SIZE} bytes; make one with "
            "secrets.token_urlsafe(32)"
        )
    # NOTE: a cookie name is a token (checked before), so it holds no NUL: the context is
    # unambiguous.
    context = KEY_CONTEXT + b"\x00" + cookie_name.encode("ascii")
    return hmac.new(raw, context, hashlib.sha256).digest()


def _secret_bytes(secret: str) -> bytes:
    # NOTE: os.environ holds a variable's bytes that are not UTF-8 as lone surrogates: a
    # secret of random bytes read from it raised UnicodeEncodeError, "surrogates not allowed".
    # Encoded back, they are the variable's bytes, as os.environb gives them.
    try:
        return secret.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        raise ValueError(
            "a session secret holds a lone surrogate, which has no bytes: pass the secret as "
            "bytes, or as text such as secrets.token_urlsafe(32) gives"
        ) from None


def _keys(secret: Secret | Iterable[Secret], cookie_name: str) -> list[bytes]:
    one = isinstance(secret, (str, bytes, bytearray)) or not isinstance(secret, Iterable)
    secrets: list[object] = [secret] if one else list(secret)
    if not secrets:
        raise ValueError("Sessions needs at least one secret")
    keys = []
    for each in secrets:
        if not isinstance(each, (str, bytes)):
            # NOTE: Sessions(os.environ.get("SECRET")) with the variable unset said
            # "'NoneType' object is not iterable", with no word of the secret.
            unset = " (is the variable it is read from set?)" if each is None else ""
            raise TypeError(f"a session secret is a str or bytes, not {type(each).__name__}{unset}")
        keys.append(_derive(each, cookie_name))
    return keys


def _stamp(text: str) -> int | None:
    # NOTE: at most 20 digits: int() refuses 4,300 or more with a ValueError, and a subclass's
    # load() may take a cookie of its own format, which _signed_at() reads.
    return int(text) if len(text) <= 20 and text.isascii() and text.isdigit() else None


def _as_written(sent: str) -> str | None:
    """Return a cookie's value decoded, or ``None`` if ``set_cookie`` never writes it so.

    NOTE: read decoded, a value with any character percent-encoded ("%2E" for ".") was the
    same session: a signed cookie had many spellings, where its signature has one.
    ``set_cookie`` writes a value's one spelling, which the browser sends. That spelling in
    double quotes is taken for it (so ``load()`` sees the one spelling all the same).
    """
    if len(sent) >= 2 and sent[0] == sent[-1] == '"':
        # SPEC: RFC 6265 4.1.1: a cookie-value may be put in DQUOTEs, and a proxy or a client
        # that writes Cookie lines with http.cookies may do so; Werkzeug and Starlette read
        # the value inside. Refused, the user's session was deleted: a logout.
        sent = sent[1:-1]
    if "%" in sent and len(sent) > MAX_COOKIE_PAIR:
        # PERF: quote() costs Python work per character it encodes: a value of 256 KiB of "%"
        # took 40 ms more (the event loop's, under ASGI). A browser keeps no cookie that long.
        return None
    value = percent_decode(sent)
    try:
        return value if encode_cookie_value(value) == sent else None
    except ValueError:  # NOTE: a lone surrogate, which no request's header holds.
        return None


def _signed_at(cookie: str) -> int | None:
    """When a cookie that ``load()`` took was signed, or ``None`` (a subclass's own format)."""
    return _stamp(cookie.rpartition(".")[0].rpartition(".")[2])


def _refresh_after(refresh_after: float | timedelta | None, lifetime: int) -> int | None:
    """Check ``Sessions(refresh_after=...)``: whole seconds, shorter than the lifetime."""
    if refresh_after is None:
        return None
    # NOTE: a fraction rounded up, as max_age's; the sign is the value's, not the rounded
    # one's: -0.5 rounded up is 0, which was taken.
    seconds = max_age_seconds(refresh_after, "refresh_after")
    given = refresh_after.total_seconds() if isinstance(refresh_after, timedelta) else refresh_after
    if given < 0 or seconds >= lifetime:
        # NOTE: a cookie is refused once max_age old: one refreshed no sooner never was.
        raise ValueError(
            f"refresh_after must be 0 or more and shorter than the session's lifetime "
            f"({lifetime} s), got {refresh_after!r}"
        )
    return seconds


def _refuse_other_flags(*, secure: object, httponly: object) -> None:
    # NOTE: secure=os.environ.get("SECURE_COOKIES") holding "false" marked the cookie Secure
    # (a non-empty str is true): over plain http the browser dropped it, every login failed
    # without a word.
    if secure is not None and not isinstance(secure, bool):
        raise TypeError(
            f"secure is True or False, or None to follow the request's scheme, not {secure!r}"
        )
    if not isinstance(httponly, bool):
        raise TypeError(f"httponly is True or False, not {httponly!r}")


class Sessions:
    """Give every request a ``request.session`` dict, stored in a signed cookie.

    The session is loaded before the handler runs; expired, tampered or malformed cookies
    give an empty session. After the handler, a changed session is written back with
    ``Set-Cookie`` (an emptied one deletes the cookie); an unchanged one sends nothing, so it
    expires ``max_age`` seconds after its last change, unless ``refresh_after`` is given.
    Values must be JSON-serializable.

    With ``max_age=None`` the cookie has neither ``Max-Age`` nor ``Expires``: the browser
    forgets it when it ends its session. The server still refuses a value signed more than
    ``DEFAULT_MAX_AGE`` (14 days) ago, as Flask refuses one past its
    ``PERMANENT_SESSION_LIFETIME``: browsers that restore their tabs keep such cookies for
    months, and a cookie copied off a machine would otherwise be good for ever.

    Args:
        secret: The signing key (at least 16 bytes), or a list of keys: the first signs, all
            verify, so a new key can be put first while cookies signed with the old one still
            work.
        cookie_name: The cookie's name.
        max_age: Seconds a session lives after its last change, or a ``timedelta`` (a
            fraction of a second is rounded up); ``None`` for a cookie that ends with the
            browser's session (see above).
        path: The cookie's ``Path``.
        domain: The cookie's ``Domain``; ``None`` keeps it to the host that set it.
        secure: Send the cookie over HTTPS only. ``None`` (the default) marks it ``Secure``
            exactly when the request came over HTTPS (``request.scheme``, which
            ``ProxyHeaders`` corrects behind a proxy), so a login over plain
            ``http://localhost`` sticks in development; ``True`` or ``False`` always wins.
        httponly: Hide the cookie from scripts.
        samesite: ``"lax"``, ``"strict"`` or ``"none"`` (which needs ``secure``).
        refresh_after: Seconds (or a ``timedelta``) after which an unchanged session's cookie
            is signed again and sent, so that a session in use lives ``max_age`` past its
            last request, not its last change (a sliding expiry); ``0`` sends it with every
            response that has a session. ``None`` (the default) never sends an unchanged one.
            Only a session that is the one the request's cookies of the name hold (others
            fail to verify) is refreshed.

    Raises:
        TypeError: If a secret is neither a ``str`` nor ``bytes`` (``None``, say),
            ``path`` is ``None``, or ``secure`` or ``httponly`` is no ``bool`` (``"false"``).
        ValueError: If no secret is given, a secret is too short or holds a lone surrogate
            (not one ``os.environ`` holds for a byte that is not UTF-8), ``max_age`` is not
            positive or longer than 400 days, ``samesite`` is unknown,
            ``samesite="none"`` or a ``__Secure-`` or ``__Host-`` name comes without
            ``secure=True``, a ``__Host-`` name with a ``domain`` or a ``path`` other than
            ``/``, or the cookie's name or domain is malformed, or ``refresh_after`` is
            negative or not shorter than the session's lifetime.
    """

    name = "sessions"
    # NOTE: what tells the core (request.session, outside this plugin's flow) that this plugin
    # sets request.state.session, whatever name it is installed under.
    sets_session = True

    def __init__(
        self,
        secret: Secret | Iterable[Secret],
        *,
        cookie_name: str = "session",
        max_age: int | timedelta | None = DEFAULT_MAX_AGE,
        path: str = "/",
        domain: str | None = None,
        secure: bool | None = None,
        httponly: bool = True,
        samesite: SameSite = "lax",
        refresh_after: int | timedelta | None = None,
    ) -> None:
        _refuse_other_flags(secure=secure, httponly=httponly)
        if samesite not in ("lax", "strict", "none"):
            raise ValueError(f"samesite must be 'lax', 'strict' or 'none', got {samesite!r}")
        if samesite == "none" and secure is not True:
            raise ValueError(
                "browsers refuse samesite='none' cookies without Secure: pass secure=True"
            )
        if path is None:
            # NOTE: set_cookie() sends no Path for None, which scopes the cookie to the folder
            # of the request that set it: a login at /auth/login never stuck on /me.
            raise TypeError("the session cookie's path is a str such as '/', not None")
        seconds = None if max_age is None else max_age_seconds(max_age)
        if seconds is not None and seconds <= 0:
            raise ValueError(f"max_age must be positive or None, got {max_age!r}")
        if seconds is not None and seconds > MAX_LIFETIME:
            raise ValueError(
                f"max_age must be at most 400 days ({MAX_LIFETIME} s), the longest browsers "
                f"keep a cookie, got {max_age!r}"
            )
        self.cookie_name, self.max_age = cookie_name, seconds
        # NOTE: how old a signature load() accepts.
        self._lifetime = DEFAULT_MAX_AGE if seconds is None else seconds
        self.refresh_after = _refresh_after(refresh_after, self._lifetime)
        self.path, self.domain = path, domain
        self.secure, self.httponly, self.samesite = secure, httponly, samesite
        # NOTE: a cookie made now, so that a bad name or domain fails here, not in a 500
        # on the first login.
        self._set(Response(), "", seconds, bool(secure))
        self.keys = _keys(secret, cookie_name)

    def setup(self, app: App) -> None:
        """Add the flow that loads and saves ``request.state.session``."""
        app.middleware(self.flow)

    def flow(self, request: Request) -> Flow:
        """Load the session before the rest of the stack, save it after if it changed."""
        header = "; ".join(request.headers.getlist("cookie"))
        cookies = cookie_values(header, self.cookie_name, as_sent=True)
        # NOTE: a WSGI server joins a client's Cookie lines with ", " (waitress-serve) or ","
        # (gunicorn), where RFC 6265 joins with "; ": the session's value read to the line's
        # end ("<signed>, theme=dark") failed its check and was deleted, a logout. No value
        # set_cookie() writes holds a comma ("%2C"), and these are as sent: one ends it. No
        # pair is read out of another cookie's value ("x=a,session=..."): a sibling subdomain
        # may set any name on the parent domain, and a __Host- session would take one planted.
        cookies = [value.partition(",")[0].rstrip(" \t") for value in cookies]
        valid = self._valid(cookies)
        session, signed_at, loaded = next(valid, ({}, None, "{}"))
        # NOTE: an invalid cookie is deleted, unless some were left untried: the user's own
        # may be among those.
        had = bool(session) or 0 < len(cookies) <= MAX_TRIED_COOKIES
        request.state.session = session
        response = yield None
        session = request.state.session
        if not isinstance(session, dict):
            raise TypeError(f"request.state.session must stay a dict, not {type(session).__name__}")
        secure = self._secure_for(request)
        # NOTE: refreshed only when it is the one session the request's cookies hold: the
        # browser says of none of several which is this plugin's own (its path and domain),
        # and another that verified (of a longer path, or planted on the parent domain) was
        # signed again over it. Ones that do not verify hold no session to be taken for it:
        # counted, any cookie a sibling subdomain planted stopped the sliding expiry. So a
        # planted one that verifies beside the user's own expired one is refreshed: that
        # request looks the same as the user's own beside a planted expired one.
        due = (
            self._due(signed_at) and len(cookies) <= MAX_TRIED_COOKIES and next(valid, None) is None
        )
        # NOTE: one due to be sent again is saved as a changed one is, so that save() keeps
        # the signature a subclass may override.
        self.save(response, session, "" if due else loaded, had, secure=secure)
        if cookies or session:
            # SPEC: RFC 9110 12.5.5: the answer depends on the session cookie; a shared cache
            # must not hand one user's page to another. Visitors without a session keep
            # answers a cache may share (a site's public pages, its static files).
            add_vary(response, "Cookie")

    def _valid(self, cookies: list[str]) -> Iterator[tuple[dict[str, Any], int | None, str]]:
        """Give the sessions the tried cookies hold, in the order sent, each when asked for.

        Each comes with when it was signed and its canonical JSON (see ``encode_session``).
        """
        # NOTE: every cookie of the name is tried, not the first only: a sibling subdomain can
        # set one on the parent domain, or on a longer path (which the browser sends first).
        # Read alone, it emptied the session, and the deletion that followed removed the
        # user's own cookie: a logout that no login undid while the planted cookie lived.
        for sent in cookies[:MAX_TRIED_COOKIES]:
            cookie = _as_written(sent)
            if cookie is None:
                continue
            session = self.load(cookie)
            if not session:
                continue
            try:
                loaded = encode_session(session)
                # NOTE: JSON's "\udce9" reads as a lone surrogate, which sign() cannot encode:
                # a 500 on every request that changed the session.
                loaded.encode("utf-8")
            except (TypeError, ValueError, RecursionError):
                # NOTE: a load() of a subclass's own format may give what save() refuses (NaN,
                # an int of 5,000 digits, a datetime): it was a 500 on every request that
                # sent the cookie. Such a session cannot be written back: it is none.
                continue
            if nests_too_deep(session, loaded):
                # NOTE: signed before the limit, or a subclass's load(): save() refuses it.
                continue
            yield session, _signed_at(cookie), loaded

    def _secure_for(self, request: Request) -> bool:
        if self.secure is not None:
            return self.secure
        return request.scheme in ("https", "wss")

    def sign(self, payload: str, timestamp: int | None = None) -> str:
        """Return the cookie value for ``payload`` (JSON text), signed with the first key."""
        stamp = int(time.time()) if timestamp is None else timestamp
        body = f"{_b64encode(payload.encode('utf-8'))}.{stamp}"
        mac = hmac.new(self.keys[0], body.encode("ascii"), hashlib.sha256).digest()
        return f"{body}.{_b64encode(mac)}"

    def load(self, cookie: str) -> dict[str, Any]:
        """Return the session a cookie holds: empty when expired, tampered or malformed."""
        body, _, signature = cookie.rpartition(".")
        if not body or not self._verified(body, signature):
            return {}
        payload, _, stamp = body.rpartition(".")
        signed_at = _stamp(stamp)
        if signed_at is None:
            return {}
        age = time.time() - signed_at
        if age > self._lifetime or age < -MAX_CLOCK_SKEW:
            return {}
        try:
            session = decode_session(_b64decode(payload))
        except (ValueError, binascii.Error, RecursionError):
            return {}
        return session if isinstance(session, dict) else {}

    def _verified(self, body: str, signature: str) -> bool:
        message = body.encode("ascii", "replace")
        # NOTE: the signature is compared in the one spelling sign() writes, not decoded:
        # base64 decoding takes padding, "+" for "-", ignored low bits in the last character
        # and skips other characters, so many altered cookies would pass as this one.
        given = signature.encode("ascii", "replace")
        # NOTE: every key is tried, whatever matched, so timing tells nothing about which.
        found = False
        for key in self.keys:
            expected = _b64encode(hmac.new(key, message, hashlib.sha256).digest())
            found |= hmac.compare_digest(expected.encode("ascii"), given)
        return found

    def save(
        self,
        response: Response,
        session: dict[str, Any],
        loaded: str,
        had: bool,
        *,
        secure: bool | None = None,
    ) -> None:
        """Write ``session`` to ``response`` if it differs from the ``loaded`` JSON.

        Args:
            response: The response to add ``Set-Cookie`` to.
            session: The session as the handler left it.
            loaded: The canonical JSON of the session as it was loaded.
            had: Whether the request carried the cookie (an invalid one is then deleted).
            secure: Whether to mark the cookie ``Secure``; ``None`` takes the plugin's
                ``secure`` (``None`` there counts as ``False``).

        Raises:
            TypeError: If ``session`` holds a value that is not JSON, or a key not ``str``.
            ValueError: If ``session`` holds a lone surrogate, which UTF-8 cannot encode, a
                float that is NaN or infinite, or an int of more digits than Python writes,
                or nests lists and dicts more than 100 deep (itself counted).
        """
        marked = bool(self.secure) if secure is None else secure
        if not session:
            if had:
                # NOTE: the same attributes as when set: browsers ignore a __Host- or __Secure-
                # cookie without Secure, and a SameSite=None cookie's deletion in a cross-site
                # frame unless it is SameSite=None too (RFC 6265bis 5.7).
                self._set(response, "", 0, marked, expires="Thu, 01 Jan 1970 00:00:00 GMT")
            return
        # PERF: the session is walked only when it changed, or would not encode (mixed keys
        # fail to sort): 3 us a request for a typical session, otherwise.
        try:
            current = encode_session(session)
        except RecursionError:
            refuse_too_deep(session)
            raise  # NOTE: a deep stack, with the session within the limit.
        except (TypeError, ValueError):
            refuse_unstorable(session)
            raise  # NOTE: json's "Circular reference detected", which the walk passes over.
        if current == loaded:
            return
        # PERF: the keys looked at first, the walk that names a place only if one is not str:
        # a cart of 450 small dicts (14 KB of JSON) took 2.19 ms a save, now 0.38 (json's
        # own encoding 0.47; timeit, 2026-12-06).
        if not keys_are_str(session):
            refuse_unstorable(session)
        if nests_too_deep(session, current):
            refuse_too_deep(session)
        try:
            value = self.sign(current)
        except UnicodeEncodeError as exc:
            # NOTE: UTF-8's "surrogates not allowed" named neither the session nor what held it.
            held = exc.object[exc.start : exc.end]
            raise ValueError(
                f"request.session holds {held!r}, a lone surrogate, which UTF-8 cannot encode "
                "(a name decoded with surrogateescape, say): store "
                "text.encode('utf-8', 'surrogateescape').decode('utf-8', 'replace'), or its repr()"
            ) from None
        # NOTE: one too large for browsers is logged by set_cookie(), by its name.
        self._set(response, value, self.max_age, marked)

    def _due(self, signed_at: int | None) -> bool:
        """Tell whether an unchanged session's cookie is to be signed again and sent."""
        if self.refresh_after is None or signed_at is None:
            return False
        # NOTE: 0 is every answer, for a cookie dated ahead of this clock too (another server's,
        # up to MAX_CLOCK_SKEW): its age is negative.
        return self.refresh_after == 0 or time.time() - signed_at >= self.refresh_after

    def _set(
        self,
        response: Response,
        value: str,
        max_age: int | None,
        secure: bool,
        expires: str | None = None,
    ) -> None:
        response.set_cookie(
            self.cookie_name,
            value,
            max_age=max_age,
            expires=expires,
            path=self.path,
            domain=self.domain,
            secure=secure,
            httponly=self.httponly,
            samesite=self.samesite,
        )
