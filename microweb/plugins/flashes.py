"""Flash messages: one-time notes for the next page ("Note saved."), kept in the session.

``flash(request, message)`` adds a message to ``request.session``; the page shown next (often
after a redirect) reads them with ``get_flashed_messages(request)``, which removes them from
the session. These are Flask's names and behaviour: every message is read at once, and a
second read within the same request gives the same list (kept in ``request.state``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Literal, overload

from microweb import Request
from microweb._request import UnloadedSession

logger = logging.getLogger("microweb.flashes")

# NOTE: Flask's key, so that a session dumped while porting reads the same.
SESSION_KEY = "_flashes"
# NOTE: where the messages read in this request are kept, for the next read of the request.
STATE_KEY = "_flashes"
# NOTE: messages wait in the session cookie, which browsers ignore past about 4 KB (keeping the
# one they had: the messages, and the request's other changes, are lost). Twenty short messages
# take about 1.5 KB; more than that waiting means that no page shows them, so the oldest give
# way.
MAX_FLASHES = 20

Flash = tuple[str, str]
Categories = str | Iterable[str]


def _check_text(value: object, what: str) -> None:
    if not isinstance(value, str):
        raise TypeError(f"a flashed {what} must be a str, not {type(value).__name__}")
    if hasattr(value, "__html__"):
        # NOTE: markupsafe.Markup is a str that would come back as plain text from the
        # session's JSON, escaped where it was meant to be HTML.
        raise TypeError(
            f"a flashed {what} is plain text, escaped when a template shows it: "
            "put the HTML in the template, and pass a category to choose it"
        )


def flash(request: Request, message: str, category: str = "message") -> None:
    """Keep ``message`` in the session until a page reads it with ``get_flashed_messages``.

    Args:
        request: The request whose session keeps the message.
        message: The text to show, plain (a template escapes it); a lone surrogate in it
            (or in ``category``) is kept as U+FFFD, which the session can store.
        category: A word the page can style or filter by: ``"error"``, ``"info"``...

    Raises:
        TypeError: If ``message`` or ``category`` is not a ``str``, or is HTML
            (``markupsafe.Markup``).
        RuntimeError: If the ``Sessions`` plugin is not installed.
    """
    _check_text(message, "message")
    _check_text(category, "category")
    waiting = request.session.get(SESSION_KEY)
    if not isinstance(waiting, list):
        waiting = []
    waiting.append([_encodable(category), _encodable(message)])
    if len(waiting) > MAX_FLASHES:
        logger.warning(
            "more than %d flashed messages wait in the session: the oldest is dropped "
            "(does a page show them?)",
            MAX_FLASHES,
        )
        del waiting[:-MAX_FLASHES]
    request.session[SESSION_KEY] = waiting


def _encodable(text: str) -> str:
    """Return ``text`` with each lone surrogate replaced by U+FFFD, which UTF-8 can encode."""
    # NOTE: a file name read with os.listdir() keeps an undecodable byte as a lone surrogate:
    # "Deleted <name>." was a 500 when the session was saved, after the handler's work was
    # done. It is shown as a decoder shows an invalid byte.
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "".join("\ufffd" if "\ud800" <= c <= "\udfff" else c for c in text)
    return text


@overload
def get_flashed_messages(
    request: Request,
    *,
    with_categories: Literal[False] = False,
    category_filter: Categories = (),
) -> list[str]: ...


@overload
def get_flashed_messages(
    request: Request,
    *,
    with_categories: Literal[True],
    category_filter: Categories = (),
) -> list[Flash]: ...


def get_flashed_messages(
    request: Request,
    *,
    with_categories: bool = False,
    category_filter: Categories = (),
) -> list[str] | list[Flash]:
    """Return the messages flashed for this page, and remove them all from the session.

    Every message is read at the first call, in the order flashed; later calls in the same
    request return the same messages (filtered by their own ``category_filter``), so a page
    may show its errors in one place and the rest in another. Messages flashed after the
    first call wait for the next request.

    Args:
        request: The request being answered.
        with_categories: Return ``(category, message)`` pairs instead of the messages.
        category_filter: Return only the messages of these categories (one ``str``, or
            several). The others are removed from the session too.

    Returns:
        The messages, or ``(category, message)`` pairs; an empty list when there are none.

    Raises:
        RuntimeError: If the ``Sessions`` plugin is not installed.
    """
    flashes = _read_once(request)
    if category_filter:
        wanted = {category_filter} if isinstance(category_filter, str) else set(category_filter)
        flashes = [flash for flash in flashes if flash[0] in wanted]
    if with_categories:
        return list(flashes)
    return [message for _, message in flashes]


def take_now(request: Request) -> None:
    """Take the waiting messages from the session now, for a later ``get_flashed_messages``.

    For a page whose template runs once its headers (the session's cookie) are sent: read
    then, the messages would stay in the session. Without a sessions plugin, nothing is done
    here: the page's own call raises, as it does in a rendered page.
    """
    try:
        _ = request.session  # NOTE: raises without a sessions plugin.
    except RuntimeError:
        return
    _read_once(request)


def _read_once(request: Request) -> list[Flash]:
    read: list[Flash] | None = getattr(request.state, STATE_KEY, None)
    if read is None and isinstance(request.session, UnloadedSession):
        # NOTE: answered before Sessions' flow loaded the session (TrustedHosts' refusal, in
        # a 400 error handler): its page, rendered with the site's base template, was a 500.
        # No message was read, so none is lost.
        return []
    if read is None:
        # NOTE: popped, so the session changes and its cookie is rewritten without them; a
        # session without messages is left as it is, and sends no cookie.
        stored = request.session.pop(SESSION_KEY, [])
        entries = stored if isinstance(stored, list) else []
        read = [(entry[0], entry[1]) for entry in entries if _is_flash(entry)]
        setattr(request.state, STATE_KEY, read)
    return read


def _is_flash(entry: object) -> bool:
    return (
        isinstance(entry, list)
        and len(entry) == 2
        and isinstance(entry[0], str)
        and isinstance(entry[1], str)
    )
