"""``microweb serve --uds``: the Unix socket, bound and removed the same way under both servers.

Uvicorn and Waitress each bind a Unix socket their own way: Uvicorn gives it mode 0o666 and
leaves the file behind when run as ``uvicorn.Server``; Waitress gives it 0o600 and leaves it
too; both replace whatever socket file is at the path, even one another server listens on,
and Uvicorn answered a regular file there with a traceback. Here ``microweb serve`` binds the
socket itself and hands it to either server (and to the workers, or the reloader's child):

- a regular file (or a directory, anything but a socket) at the path is never deleted: the
  start fails with one line;
- a socket file that a running server listens on is left alone: the start fails;
- a socket file nobody listens on (a server that was killed) is replaced;
- the file gets mode ``SOCKET_MODE``, and is removed when the server stops, if it is still
  the one bound here.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import stat
from typing import Any

from ._errors import log_failure
from ._importer import TargetError
from ._stopping import AT_END, STARTUP_FAILURE

# NOTE: read and write for everyone, as Uvicorn and Gunicorn give it (Waitress's 0o600 lets
# only the server's own user connect): nginx runs as a user of its own (www-data), and a
# socket it may not write to answered every request 502. Access is restricted by the
# directory the socket is in (docs/deployment.md): one only the server's user and nginx's
# group may enter.
SOCKET_MODE = 0o666


class UnixListener:
    """A Unix socket bound at ``path`` (not listening yet: the server listens once the app
    has started), and the file it made.

    Args:
        path: Where the socket is made.
        sock: The bound socket.
    """

    def __init__(self, path: str, sock: socket.socket) -> None:
        self.path = path
        self.sock = sock
        # NOTE: a relative path was looked for again from the working directory of the end,
        # which app code may have changed: the file was left behind.
        self._where = os.path.abspath(path)
        found = os.stat(path)
        self._made = (found.st_dev, found.st_ino)

    def remove(self) -> None:
        """Remove the socket file, if it is still the one bound here (never another file)."""
        with contextlib.suppress(OSError):
            found = os.stat(self._where)
            # NOTE: a socket still, as an inode's number is given again once freed: a regular
            # file put in place of a removed socket had the same one.
            if stat.S_ISSOCK(found.st_mode) and (found.st_dev, found.st_ino) == self._made:
                os.unlink(self._where)


def bind_unix(path: str) -> UnixListener | None:
    """Bind a Unix socket at ``path``; return it, or ``None`` when it cannot be (logged).

    A stale socket file at ``path`` (nobody listens on it) is replaced; any other file there
    is left as it is, and the start fails.
    """
    refusal = _refusal(path)
    if refusal is None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(path)
            os.chmod(path, SOCKET_MODE)
            return UnixListener(path, sock)
        except OSError as exc:
            sock.close()
            refusal = exc.strerror or str(exc)
    # NOTE: one line and status 3, as for a port that is taken.
    # NOTE: the path as "serving on" gives it: a relative one said nothing of where it was.
    log_failure("cannot listen on unix:%s: %s", os.path.abspath(path), refusal)
    return None


def _refusal(path: str) -> str | None:
    """Return why the file at ``path`` must stay, or ``None`` once the path is free."""
    try:
        found = os.lstat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        return exc.strerror or str(exc)
    if not stat.S_ISSOCK(found.st_mode):
        return "the path exists and is not a socket (it is left as it is)"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        # NOTE: a blocking connect waits for room in a full accept queue (a server that
        # hangs, or was stopped): the start hung for ever, saying nothing.
        probe.setblocking(False)
        try:
            probe.connect(path)
        except ConnectionRefusedError:
            pass  # NOTE: nobody listens on it: the socket of a server that was killed.
        except BlockingIOError:
            return "another server listens on it (and accepts no connection)"
        except OSError as exc:
            return exc.strerror or str(exc)
        else:
            return "another server listens on it"
    try:
        os.unlink(path)
    except OSError as exc:
        if exc.errno != errno.ENOENT:
            return exc.strerror or str(exc)
    return None


def port_of(sock: socket.socket) -> int:
    """Return the port ``sock`` is bound to, 0 for a Unix socket (which has none)."""
    name = sock.getsockname()
    # NOTE: a Unix socket's name is its path, whose [1] was taken for the port: a path of one
    # character ("--uds s") ended Uvicorn's start with an IndexError and a traceback.
    return 0 if isinstance(name, str) else int(name[1])


def check_unix_path(path: str) -> None:
    """Refuse a ``--uds`` path that is empty or no printable text, in no folder, or of a file
    that is no socket.

    Raises:
        TargetError: If it is.
    """
    if not path or not path.isprintable():
        # NOTE: bytes of no UTF-8 come from the command line as surrogates: the socket was
        # bound, then printing where it serves raised UnicodeEncodeError under a UTF-8 locale
        # (a traceback, status 1); a newline split that line in two; "" bound a socket of no
        # file (Linux's autobind) and failed as "unix::".
        raise TargetError(f"--uds must be a path of printable text, got {path!r}")
    # NOTE: both were failed starts (status 3), found once the app had been imported; the
    # bind still refuses them, should they change meanwhile.
    where = os.path.abspath(path)
    if not os.path.isdir(os.path.dirname(where)):
        raise TargetError(f"--uds {where}: there is no folder {os.path.dirname(where)}")
    if os.path.lexists(where) and not stat.S_ISSOCK(os.lstat(where).st_mode):
        raise TargetError(f"--uds {where} exists and is not a socket (it is left as it is)")


def check_unix_trust(forwarded_allow_ips: str | None) -> None:
    """Refuse ``--forwarded-allow-ips`` that trusts nobody on a Unix socket.

    Raises:
        TargetError: If it has no ``*``: a Unix socket's peer has no address, which only
            ``*`` trusts.
    """
    entries = [] if forwarded_allow_ips is None else forwarded_allow_ips.split(",")
    if entries and "*" not in (entry.strip() for entry in entries):
        # NOTE: as Uvicorn's --forwarded-allow-ips, which trusts a peer without address only
        # with "*": addresses would silently trust nobody.
        raise TargetError(
            "--forwarded-allow-ips with --uds: a Unix socket's peer has no address, "
            "give '*' to trust the proxy in front of it"
        )


def listen_unix(path: str) -> UnixListener:
    """Bind the Unix socket at ``path``, its file removed however the process ends (``end_by``).

    Raises:
        SystemExit: With the startup failure's status, when it cannot be bound (logged).
    """
    listener = bind_unix(path)
    if listener is None:
        raise SystemExit(STARTUP_FAILURE)
    AT_END.append(listener.remove)
    return listener


class NoUnixAddress:
    """A Uvicorn protocol's mixin: on a Unix socket, no server address in the scope.

    Uvicorn gives the socket's path as the server's host (``("/run/app.sock", None)``), which
    became the host of a request without ``Host``, and of its ``url``; Waitress gives none
    (``OrderlyTask``). The client is ``None`` under both already.
    """

    server: tuple[str, int | None] | None

    def connection_made(self, transport: Any) -> None:
        """Start the connection as the protocol does; drop a Unix socket's path."""
        super().connection_made(transport)  # type: ignore[misc]
        if self.server is not None and self.server[1] is None:
            self.server = None
