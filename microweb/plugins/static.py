"""Serve the files of one folder under a URL prefix, never a file outside it."""

from __future__ import annotations

import errno
import logging
import ntpath
import os
import posixpath
import stat
from urllib.parse import quote, quote_from_bytes

from microweb import App, HTTPError, Request, Response, Route
from microweb._files import FileInfo, held_file, open_checked
from microweb._request import logged_method, logged_path
from microweb._response import described_file
from microweb._routing import check_prefix

# NOTE: what stays as it is in a query string: reserved characters and escapes already made.
QUERY_SAFE = "!$%&'()*+,/:;=?@~"
# NOTE: no longer path names a file: Linux opens at most 4096 bytes (PATH_MAX), macOS 1024, and
# a character is at least one byte. Refused before os.path.realpath, which looks up every
# segment and joins a longer string for each: 128,000 segments ("a/a/a/...", one request line
# under Waitress's 256 KiB head cap) took 3.3 s; 2,048 (4 KiB) take 13 ms.
MAX_PATH_LENGTH = 4096
# NOTE: why a file can't be looked up or opened that is the file's own (or its path's): no file
# the client may have, a 404. EINVAL and EILSEQ: a name the file system can't hold (vfat's
# "a:b", a strict UTF-8 one's), which a client may ask for. EISDIR and ENXIO: a folder, a
# socket or a device put in the file's place after its type was read (the open met it).
# ``None``: microweb's own reasons (not a regular file, replaced).
_NOT_SERVABLE = frozenset(
    {
        errno.ENOENT, errno.ENOTDIR, errno.ELOOP, errno.ENAMETOOLONG, errno.EACCES, errno.EPERM,
        errno.EINVAL, errno.EILSEQ, errno.EISDIR, errno.ENXIO, None,
    }
)  # fmt: skip
# NOTE: the process (EMFILE) or the system (ENFILE) out of file descriptors: an outage that
# passes, told as one (503), not as a "not found" that caches keep.
_OUT_OF_DESCRIPTORS = frozenset({errno.EMFILE, errno.ENFILE})
_RETRY_AFTER = "1"

logger = logging.getLogger("microweb")


def _unsafe(path: str) -> bool:
    # NOTE: the path arrives percent-decoded, so "%2e%2e", "%5c" and "%00" are checked here too.
    if "\x00" in path or "\\" in path or posixpath.isabs(path):
        return True
    # NOTE: drive letters and UNC names matter on Windows, and are refused everywhere alike.
    if ntpath.isabs(path) or ntpath.splitdrive(path)[0]:
        return True
    return ".." in path.split("/")


def _hidden(path: str) -> bool:
    # NOTE: "." is the folder itself (os.path.relpath gives it for the root), not a dotfile.
    return any(part.startswith(".") and part != "." for part in path.split("/"))


def _resolve(root: str, path: str, dotfiles: bool) -> str | None:
    if len(path) > MAX_PATH_LENGTH or _unsafe(path) or (not dotfiles and _hidden(path)):
        return None
    full = _real(os.path.join(root, *path.split("/")))
    return full if full is not None and _servable(root, full, dotfiles) else None


def _real(path: str) -> str | None:
    """``os.path.realpath(path)``, or ``None`` for a name the file system encoding can't hold."""
    # NOTE: a process whose file names are ASCII (PYTHONUTF8=0 under the C locale) or latin-1
    # can't look up a name with a euro sign: each request for one was a 500 (UnicodeEncodeError).
    # No file has that name here, as for EILSEQ.
    try:
        return os.path.realpath(path)
    except UnicodeEncodeError:
        return None


# NOTE: where Linux names each descriptor's file, as the kernel found it, wherever the links led.
_FD_NAMES = "/proc/self/fd" if os.path.isdir("/proc/self/fd") else None


def _opened_inside(root: str, full: str, dotfiles: bool) -> FileInfo | None:
    """Open ``full`` and describe it, if it is a regular file that is servable as opened.

    ``full`` was checked by name (``os.path.realpath``): a folder of it swapped for a symbolic
    link in between led outside the root. The file's own name, as the kernel gives it for the
    descriptor, is checked again, and that descriptor is the one the response sends from
    (``HeldFile``): its headers and its body are of the one file checked. Without
    ``/proc/self/fd`` (not Linux), the check by name stands alone.

    Raises:
        OSError: If it can't be opened or described.
    """
    opened, found = open_checked(full)
    try:
        # NOTE: a named pipe put in its place opens at once for reading (O_NONBLOCK).
        servable = stat.S_ISREG(found.st_mode) and (
            _FD_NAMES is None
            or _servable(root, os.readlink(f"{_FD_NAMES}/{opened.fileno()}"), dotfiles)
        )
    except BaseException:
        opened.close()
        raise
    if not servable:
        opened.close()
        return None
    return held_file(full, opened, found)


def _servable(root: str, full: str, dotfiles: bool) -> bool:
    """Whether the real path ``full`` is inside ``root`` and no dotfile (unless served)."""
    if os.path.commonpath([root, full]) != root:
        return False
    # NOTE: checked once resolved: a symbolic link inside the folder may lead to ".git".
    return dotfiles or not _hidden(os.path.relpath(full, root).replace(os.sep, "/"))


def safe_join(
    directory: str | bytes | os.PathLike[str] | os.PathLike[bytes],
    path: str,
    *,
    dotfiles: bool = False,
) -> str | None:
    """Return the real path that ``path`` names inside ``directory``, if it may be served.

    This is the check ``Static`` makes, for handlers that serve files themselves, such as from
    a ``{name:path}`` parameter; by the name only. ``Static`` also checks the file it opens (on
    Linux): a folder of the path swapped for a symbolic link to outside between this check and
    the handler's open is followed. Where others may change the folder, serve it with
    ``Static``.

    Args:
        directory: The folder that holds the files.
        path: A relative path with ``/`` separators, as the client sent it (percent-decoded).
        dotfiles: Allow names that start with a dot (``.env``, ``.git/config``).

    Returns:
        An absolute path inside ``directory``, symbolic links resolved (the file may not
        exist), or ``None`` for a path that is malformed (``..`` segments, backslashes, NUL
        bytes, absolute paths, drive letters), longer than any file name can be (4096
        characters, ``MAX_PATH_LENGTH``), can't be written in the file system's encoding,
        leads outside ``directory``, or names a dotfile when ``dotfiles`` is false.
    """
    return _resolve(os.path.realpath(os.fsdecode(directory)), path, dotfiles)


class Static:
    """Serve the files under ``directory`` at ``prefix + "/" + relative path``.

    Files are sent as ``Response.file`` sends them, so conditional requests and ranges work,
    from the descriptor opened to check them (never a second open after the headers). Paths with
    ``..`` segments, backslashes, NUL bytes, absolute paths or drive letters are refused, and so
    are symbolic links that lead out of the folder and, unless ``dotfiles`` is true, names that
    start with a dot anywhere in the path: all get 404, like missing files. A file that can't
    be opened as the process is out of file descriptors gets 503 with ``Retry-After``; another
    failure of the disk is raised as the ``OSError`` it is (the app's 500).

    Args:
        directory: The folder to serve; it must exist.
        prefix: The URL prefix, such as ``"/static"`` (``""`` serves from the root).
        index: The file served for a folder (``"/static/docs/"``), or ``None`` for 404. A folder
            asked for without its final slash is redirected to it, so relative links work. The
            index is refused as the file itself would be (a link out of the folder, or to a
            dotfile).
        name: The plugin's name, and the route's name for ``url_for(name, path=...)``; give each
            ``Static`` of an app its own.
        dotfiles: Serve files and folders whose names start with a dot (``.env``, ``.git/``,
            ``.well-known/``); by default they get 404.

    Raises:
        ValueError: If ``directory`` is not a folder, ``prefix`` is malformed (or holds a
            route parameter, ``{...}``), or ``index`` is a dotfile while ``dotfiles`` is false.
    """

    def __init__(
        self,
        directory: str | bytes | os.PathLike[str] | os.PathLike[bytes],
        prefix: str = "/static",
        index: str | None = "index.html",
        name: str = "static",
        dotfiles: bool = False,
    ) -> None:
        # NOTE: fsdecode, not fspath: a bytes folder was taken here, and every request then
        # joined it with the str path, a TypeError (a 500) for each file.
        root = os.path.realpath(os.fsdecode(directory))
        if not os.path.isdir(root):
            raise ValueError(f"Static directory {os.fsdecode(directory)!r} is not a folder")
        check_prefix(prefix, "Static", "files")  # NOTE: not by its route's template (review169).
        if "{" in prefix or "}" in prefix:
            # NOTE: else a TypeError at install that serve() takes no such path parameter.
            raise ValueError(
                f"Static prefix {prefix!r} is a fixed path: it can't hold route parameters {{...}}"
            )
        if index is not None and _unsafe(index):
            raise ValueError(f"Static index {index!r} must be a relative path inside the folder")
        if index is not None and not dotfiles and _hidden(index):
            # NOTE: an index is served as a request for it by name would be: never, here.
            raise ValueError(f"Static index {index!r} is a dotfile: pass dotfiles=True to serve it")
        self.root, self.prefix, self.index, self.name = root, prefix, index, name
        self.dotfiles = dotfiles

    def setup(self, app: App) -> None:
        """Add the ``GET`` routes: every path under the prefix, and the prefix itself (the
        folder's index) unless ``index`` is ``None``."""
        app.get(self.prefix + "/{path:path}", name=self.name)(self.serve)
        if self.index is None:
            # NOTE: they could only answer 404; at the root (prefix ""), "/" clashed with the
            # app's own home page, which favicon.ico and robots.txt served so stand beside.
            return
        app.get(self.prefix + "/", name=f"{self.name}.index")(self.serve)
        if self.prefix:
            app.get(self.prefix, name=f"{self.name}.prefix")(self.serve)

    def _clash_advice(self, route: Route) -> str:
        """What to change when one of this plugin's routes clashes with the app's."""
        if route.name in (f"{self.name}.index", f"{self.name}.prefix"):
            where = route.template
            return (
                f"which serves the folder's {self.index} at {where}: pass index=None to "
                f"Static() to leave {where} to the app's route"
            )
        return f"which serves the folder's files under {self.prefix}/: give it another prefix="

    def serve(self, request: Request, path: str = "") -> Response:
        """Answer one request: the file, a folder's index, a redirect to a folder, or 404.

        Raises:
            HTTPError: 404 for a missing or refused path.
        """
        full = self.resolve(path)
        if full is None:
            raise HTTPError(404)
        mode = _mode(request, full)
        if stat.S_ISDIR(mode):
            return self._folder(request, full)
        if _names_a_folder(path) or not stat.S_ISREG(mode):
            raise HTTPError(404)
        return self._file(request, full)

    def resolve(self, path: str) -> str | None:
        """Return the real path that ``path`` (relative to the prefix) names, if it is inside.

        Returns:
            An absolute path inside the folder (it may not exist), or ``None`` for a path that is
            malformed, leads outside the folder (symbolic links followed) or names a dotfile
            that is not served (see ``safe_join``).
        """
        return _resolve(self.root, path, self.dotfiles)

    def _folder(self, request: Request, full: str) -> Response:
        if self.index is None:
            raise HTTPError(404)
        index = _real(os.path.join(full, self.index))
        # NOTE: checked as any file is: an index.html linked to "../.git/config" served it.
        if (
            index is None
            or not _servable(self.root, index, self.dotfiles)
            or not stat.S_ISREG(_mode(request, index))
        ):
            raise HTTPError(404)
        if not request.path.endswith("/"):
            return Response.redirect(_with_slash(request), 308)
        return self._file(request, index)

    def _file(self, request: Request, full: str) -> Response:
        try:
            info = _opened_inside(self.root, full, self.dotfiles)
        except OSError as exc:
            _failed(request, exc)
            raise HTTPError(404) from None
        if info is None or info.held is None:
            raise HTTPError(404)
        # NOTE: closed when the request ends, unless the response's read took it: a HEAD, a
        # 304, a response that a flow or an error replaced never reads it.
        request._close_at_end(info.held)
        return described_file(Response, info)


def _mode(request: Request, full: str) -> int:
    """Return the file type and mode bits of ``full``, 0 where nothing is there."""
    # NOTE: os.path.isfile() and isdir() say False for any error: a disk's EIO was a 404.
    try:
        return os.stat(full).st_mode
    except OSError as exc:
        _failed(request, exc)
        return 0


def _failed(request: Request, exc: OSError) -> None:
    """Return if ``exc`` says that no file is there to serve (the caller's 404); else raise
    the answer to it.

    Raises:
        HTTPError: 503, with ``Retry-After``, for a process or system out of file descriptors.
        OSError: ``exc``, for any other failure (a disk's ``EIO``): the app's 500, logged.
    """
    if exc.errno in _NOT_SERVABLE:
        return
    if exc.errno in _OUT_OF_DESCRIPTORS:
        logger.warning(
            "%s %s answered 503: no file descriptor to open the file (%s: %s)",
            logged_method(request),
            logged_path(request),
            errno.errorcode[exc.errno],
            exc.strerror,
        )
        raise HTTPError(503, headers={"Retry-After": _RETRY_AFTER}) from None
    raise exc


def _names_a_folder(path: str) -> bool:
    # NOTE: a path that ends in "/" or "/." names a folder. os.path.realpath drops a final "."
    # without asking whether what comes before it is a folder: "a.txt/." was served as
    # "a.txt" while "a.txt/" got 404.
    return path.rpartition("/")[2] in ("", ".")


def _with_slash(request: Request) -> str:
    location = quote(request.root_path + request.path) + "/"
    if request.query_string:
        # NOTE: the query goes along (a form's GET, a tracking tag), escaped byte for byte.
        location += "?" + quote_from_bytes(request.query_string, safe=QUERY_SAFE)
    return location
