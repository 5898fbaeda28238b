"""A file as a response body: its reads (``FileBlocks``), its media type guessed from its name,
and the ``Content-Disposition`` that offers it as a download."""

from __future__ import annotations

import io
import mimetypes
import os
import tempfile
from typing import Any
from urllib.parse import quote

from ._files import FILE_CHUNK
from ._media import JSON, OCTETS

# NOTE: the files that iterate by lines: NamedTemporaryFile's wrapper (and, before Python
# 3.11, SpooledTemporaryFile) is no io.IOBase, and an export written to one was sent by lines.
OPEN_FILES = (io.IOBase, tempfile._TemporaryFileWrapper, tempfile.SpooledTemporaryFile)


class FileBlocks:
    """An open file's contents, in reads of up to ``FILE_CHUNK`` bytes (or characters, for a
    text file); ``close()`` closes the file, also when it was never read (a ``HEAD``)."""

    __slots__ = ("file",)

    def __init__(self, file: Any) -> None:
        self.file = file

    def __iter__(self) -> FileBlocks:
        return self

    def __next__(self) -> bytes | str:
        block: bytes | str = self.file.read(FILE_CHUNK)
        if not block:
            raise StopIteration
        return block

    def close(self) -> None:
        self.file.close()


SVG = "image/svg+xml"
# NOTE: the type of a compressed file ("data.json.gz"), which mimetypes gives as the type of
# its content plus an encoding: those bytes are the archive, not JSON, and labelled as JSON
# they were compressed a second time by GZip and read as gzip bytes by clients.
COMPRESSED_TYPES = {
    "gzip": "application/gzip",
    "bzip2": "application/x-bzip2",
    "xz": "application/x-xz",
}


# NOTE: web file types that Python's own table does not know: a source map ("app.js.map")
# went out as application/octet-stream, which GZip leaves uncompressed. The images and fonts
# are known from the host's /etc/mime.types only, which slim container images lack: there a
# .webp opened in a tab was downloaded, and a .ttf left uncompressed.
WEB_TYPES = {
    ".map": JSON,
    ".webp": "image/webp",
    ".avif": "image/avif",
    ".woff": "font/woff",
    ".woff2": "font/woff2",
    ".ttf": "font/ttf",
    ".otf": "font/otf",
}


def guess_type(path: str) -> str:
    guessed, encoding = mimetypes.guess_type(path)
    if encoding is not None:
        return COMPRESSED_TYPES.get(encoding, OCTETS)
    if guessed is None:
        guessed = WEB_TYPES.get(os.path.splitext(path)[1].lower(), OCTETS)
    # NOTE: text files are taken as UTF-8, the web's default; pass media_type= otherwise.
    return f"{guessed}; charset=utf-8" if guessed.startswith("text/") else guessed


def content_disposition(filename: str) -> str:
    """Return an ``attachment`` ``Content-Disposition`` value safe for any filename (RFC 6266
    ``filename*``)."""
    # NOTE: "%" too: Chromium percent-decodes a plain filename (RFC 6266 appendix D), and saved
    # "100%20sure.pdf" as "100 sure.pdf"; the exact name then goes in filename*.
    ascii_name = "".join(
        c if c.isascii() and c.isprintable() and c not in '"\\%' else "_" for c in filename
    )
    value = f'attachment; filename="{ascii_name}"'
    if ascii_name != filename:
        # NOTE: a lone surrogate (a name read from disk that is not UTF-8, os.listdir's
        # escapes; a JSON "\ud800") has no UTF-8 form: quote() raised UnicodeEncodeError, a
        # 500. Each one becomes U+FFFD, as a decoder writes an invalid byte.
        utf8_name = "".join("\ufffd" if "\ud800" <= c <= "\udfff" else c for c in filename)
        value += f"; filename*=UTF-8''{quote(utf8_name, safe='')}"
    return value
