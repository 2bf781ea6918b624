"""Two ways to hand an nft script to the kernel, behind one ``run(script)`` call.

* ``LibNft`` loads ``libnftables.so.1`` with ctypes and keeps one context (and so
  one netlink socket) for the responder's life: no fork, no exec, ~0.1 ms a call.
  This is what Debian's ``python3-nftables`` does; it is reimplemented here in a
  few lines because that package installs into the system interpreter's
  dist-packages, which the venv does not see.
* ``CliNft`` runs ``[ip netns exec NAME] nft -f -`` per call: slower (a fork and
  two execs, milliseconds) but needs only the ``nft`` binary.

A netlink socket belongs to the network namespace it was opened in. ``LibNft``
therefore opens its context from inside the target namespace (``setns`` on the
calling thread, then back) and every later command lands there whichever thread
sends it; libnftables since 0.9.9 never reopens that socket.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import shutil
import subprocess
import threading
from typing import Protocol

from connectors.nftables._errors import NftablesError, NftablesUnavailable

_CLONE_NEWNET = 0x40000000
_CAP_NET_ADMIN = 12
_CAP_SYS_ADMIN = 21
# libnftables.h output flags
_OUTPUT_NUMERIC_TIME = 1 << 10
NETNS_DIR = "/run/netns"
"""Where ``ip netns add`` pins named namespaces."""


class NftBackend(Protocol):
    """Runs one nft script as one transaction."""

    mode: str

    def run(self, script: str, *, check: bool = True) -> tuple[bool, str]:
        """(ok, stdout); with ``check`` a refused script raises ``NftablesError`` instead."""
        ...

    def close(self) -> None:
        """Release the context / socket (and with it the namespace reference)."""
        ...


def check_privileges(netns: str | None) -> None:
    """Raise ``NftablesUnavailable`` unless this process holds the capabilities nft needs."""
    caps = _effective_caps()
    if not caps >> _CAP_NET_ADMIN & 1:
        raise NftablesUnavailable("nftables needs CAP_NET_ADMIN (run as root or grant the capability)")
    if netns is not None:
        if not caps >> _CAP_SYS_ADMIN & 1:
            raise NftablesUnavailable(f"entering network namespace {netns!r} needs CAP_SYS_ADMIN")
        if "/" in netns or netns in ("", ".", "..") or not os.path.exists(os.path.join(NETNS_DIR, netns)):
            raise NftablesUnavailable(f"no network namespace {netns!r} in {NETNS_DIR}")


def _effective_caps() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("CapEff:"):
                return int(line.split()[1], 16)
    return 0


class LibNft:
    """libnftables through ctypes; one context, serialised by a lock (contexts are not thread-safe)."""

    mode = "lib"

    def __init__(self, netns: str | None) -> None:
        try:
            lib = ctypes.CDLL("libnftables.so.1", use_errno=True)
        except OSError as exc:
            raise NftablesUnavailable("libnftables.so.1 not found (Debian package libnftables1)") from exc
        lib.nft_ctx_new.restype = ctypes.c_void_p
        lib.nft_ctx_new.argtypes = [ctypes.c_uint32]
        lib.nft_ctx_free.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_buffer_output.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_buffer_error.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_output_set_flags.argtypes = [ctypes.c_void_p, ctypes.c_uint]
        lib.nft_ctx_get_output_buffer.restype = ctypes.c_char_p
        lib.nft_ctx_get_output_buffer.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_get_error_buffer.restype = ctypes.c_char_p
        lib.nft_ctx_get_error_buffer.argtypes = [ctypes.c_void_p]
        lib.nft_run_cmd_from_buffer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        self._lib = lib
        self._lock = threading.Lock()
        self._ctx = _in_netns(netns, lambda: lib.nft_ctx_new(0)) if netns else lib.nft_ctx_new(0)
        if not self._ctx:
            raise NftablesUnavailable("libnftables could not open a netlink socket")
        lib.nft_ctx_buffer_output(self._ctx)
        lib.nft_ctx_buffer_error(self._ctx)
        lib.nft_ctx_output_set_flags(self._ctx, _OUTPUT_NUMERIC_TIME)

    def run(self, script: str, *, check: bool = True) -> tuple[bool, str]:
        with self._lock:
            if not self._ctx:
                raise NftablesError("nftables responder is closed")
            rc = self._lib.nft_run_cmd_from_buffer(self._ctx, script.encode())
            out = (self._lib.nft_ctx_get_output_buffer(self._ctx) or b"").decode()
            err = (self._lib.nft_ctx_get_error_buffer(self._ctx) or b"").decode()
        if rc != 0 and check:
            raise NftablesError(f"nft refused the command: {err.strip() or 'no diagnostic'}")
        return rc == 0, out

    def close(self) -> None:
        with self._lock:
            if self._ctx:
                self._lib.nft_ctx_free(self._ctx)
                self._ctx = None


def _in_netns(netns: str, fn):
    """Call ``fn`` with this thread in ``netns``, then return the thread to where it was."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        target = os.open(os.path.join(NETNS_DIR, netns), os.O_RDONLY)
        try:
            if libc.setns(target, _CLONE_NEWNET) != 0:
                raise NftablesUnavailable(
                    f"cannot enter network namespace {netns!r}: {os.strerror(ctypes.get_errno())}")
        finally:
            os.close(target)
        try:
            return fn()
        finally:
            if libc.setns(home, _CLONE_NEWNET) != 0:
                # A thread stranded in another namespace would misroute all later traffic: stop here.
                raise RuntimeError(f"could not leave network namespace {netns!r}")
    finally:
        os.close(home)


class CliNft:
    """``nft -f -`` per call, under ``ip netns exec`` when a namespace is set."""

    mode = "cli"

    def __init__(self, netns: str | None, timeout: float = 10.0) -> None:
        nft = shutil.which("nft") or next(
            (p for p in ("/usr/sbin/nft", "/sbin/nft") if os.access(p, os.X_OK)), None)
        if nft is None:
            raise NftablesUnavailable("nft not found (install the Debian package nftables)")
        prefix: list[str] = []
        if netns is not None:
            ip = shutil.which("ip") or "/usr/sbin/ip"
            if not os.access(ip, os.X_OK):
                raise NftablesUnavailable("ip not found (Debian package iproute2), needed for netns")
            prefix = [ip, "netns", "exec", netns]
        self._argv = [*prefix, nft, "--numeric-time", "-f", "-"]
        self._timeout = timeout

    def run(self, script: str, *, check: bool = True) -> tuple[bool, str]:
        try:
            proc = subprocess.run(self._argv, input=script, capture_output=True, text=True,
                                  timeout=self._timeout, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise NftablesError(f"could not run nft: {exc}") from exc
        if proc.returncode != 0 and check:
            raise NftablesError(f"nft refused the command: {proc.stderr.strip() or f'exit {proc.returncode}'}")
        return proc.returncode == 0, proc.stdout

    def close(self) -> None:
        pass


def open_backend(mode: str, netns: str | None) -> NftBackend:
    """``lib``, ``cli``, or ``auto`` (lib when libnftables loads, else cli)."""
    check_privileges(netns)
    if mode == "lib":
        return LibNft(netns)
    if mode == "cli":
        return CliNft(netns)
    if mode != "auto":
        raise ValueError(f"mode must be auto, lib or cli, not {mode!r}")
    try:
        return LibNft(netns)
    except NftablesUnavailable:
        return CliNft(netns)
