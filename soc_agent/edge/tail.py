"""Follow a log file across rotation and truncation, woken by inotify (no polling delay).

A directory watch (not a file watch) sees both appends to the file and a new
file appearing under its name after ``logrotate``. On every wake-up the
follower reads to end of file, then compares the path's inode with the open
descriptor's: a different inode means the file was rotated, so the rest of
the old file is read and the new one is opened from its start; a size below
the read position means it was truncated (``copytruncate``), so reading
restarts at 0. Only complete lines are returned, as chunks of ``\n``-joined lines (the
sensor scans a chunk with one regex); a partial last line waits.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import select
from collections.abc import Iterator

_IN_NONBLOCK, _IN_CLOEXEC = 0o4000, 0o2000000
_IN_MODIFY, _IN_ATTRIB, _IN_MOVED_FROM, _IN_MOVED_TO = 0x2, 0x4, 0x40, 0x80
_IN_CREATE, _IN_DELETE, _IN_CLOSE_WRITE = 0x100, 0x200, 0x8
_MASK = _IN_MODIFY | _IN_ATTRIB | _IN_MOVED_FROM | _IN_MOVED_TO | _IN_CREATE | _IN_DELETE | _IN_CLOSE_WRITE
_READ = 256 << 10


class _Inotify:
    def __init__(self, directory: str) -> None:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        self.fd = libc.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC)
        if self.fd < 0 or libc.inotify_add_watch(self.fd, directory.encode(), _MASK) < 0:
            raise OSError(ctypes.get_errno(), f"inotify on {directory}")
        self.poll = select.poll()
        self.poll.register(self.fd, select.POLLIN)

    def wait(self, timeout_s: float) -> None:
        if self.poll.poll(int(timeout_s * 1000)):
            try:
                while os.read(self.fd, 65536):
                    pass
            except BlockingIOError:
                pass

    def close(self) -> None:
        os.close(self.fd)


class FileFollower:
    """Complete lines appended to ``path``, across rotation (inode change) and truncation.

    ``from_start``: read what is already in the file first (replay); otherwise
    start at its current end, as a tailing daemon does.
    """

    def __init__(self, path: str, from_start: bool = False) -> None:
        self.path = os.path.abspath(path)
        self.rotations = 0
        self.truncations = 0
        self._fd: int | None = None
        self._ino = None
        self._pos = 0
        self._rest = b""
        self._open(from_start)
        self._inotify: _Inotify | None = None

    def _open(self, from_start: bool) -> bool:
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return False
        st = os.fstat(fd)
        self._fd, self._ino = fd, (st.st_dev, st.st_ino)
        self._pos = 0 if from_start else st.st_size
        if self._pos:
            os.lseek(fd, self._pos, os.SEEK_SET)
        return True

    def read_available(self) -> list[bytes]:
        """Chunks of complete lines (no final newline) now readable, about 256 KiB at most per call,
        handling rotation and truncation."""
        out: list[bytes] = []
        if self._fd is None and not self._open(True):
            return out
        if self._drain(out):
            return out  # more to read: the rotation check waits for the end of the file
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return out  # rotated away, the new file not created yet
        if (st.st_dev, st.st_ino) != self._ino:
            while self._drain(out):
                pass
            if self._rest:
                out.append(self._rest)
                self._rest = b""
            os.close(self._fd)
            self._fd = None
            self.rotations += 1
            if self._open(True):
                self._drain(out)
        elif st.st_size < self._pos:
            self.truncations += 1
            self._rest = b""
            self._pos = 0
            os.lseek(self._fd, 0, os.SEEK_SET)
            self._drain(out)
        return out

    def _drain(self, out: list[bytes]) -> bool:
        """Read up to ~256 KiB of lines into ``out``; True when the limit stopped it (more may follow)."""
        fd = self._fd
        budget = _READ
        while True:
            if budget <= 0:
                return True
            data = os.read(fd, _READ)
            if not data:
                return False
            budget -= len(data)
            self._pos += len(data)
            if self._rest:
                data = self._rest + data
            cut = data.rfind(b"\n")
            if cut < 0:
                self._rest = data
                continue
            self._rest = data[cut + 1:]
            out.append(data[:cut])

    def follow(self, stop, idle_s: float = 0.5) -> Iterator[list[bytes]]:
        """Yield lists of chunks (see ``read_available``) until ``stop`` (a threading.Event) is set."""
        self._inotify = _Inotify(os.path.dirname(self.path))
        try:
            while not stop.is_set():
                lines = self.read_available()
                if lines:
                    yield lines
                    continue
                self._inotify.wait(idle_s)
        finally:
            self._inotify.close()

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
