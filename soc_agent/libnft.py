"""libnftables through ctypes, and the set an address is filed in: one binding for the responder and the edge.

``LibNft`` loads ``libnftables.so.1`` with ctypes and keeps one context (and so
one netlink socket) for its owner's life: no fork, no exec, ~0.1 ms a call.
This is what Debian's ``python3-nftables`` does; it is reimplemented here in a
few lines because that package installs into the system interpreter's
dist-packages, which a venv does not see.

A netlink socket belongs to the network namespace it was opened in, so a
context for a namespace is opened from inside it (``setns`` on the calling
thread, then back) and every later command lands there whichever thread sends
it; libnftables since 0.9.9 never reopens that socket.

The module depends on nothing but the standard library: the edge sensor imports
it without pulling in the ``connectors`` package (every vendor mapping and
pydantic, ~50 MiB). Both users map ``NftError`` onto their own error family.
"""

from __future__ import annotations

import ctypes
import ipaddress
import os
import re
import threading

_CLONE_NEWNET = 0x40000000
_OUTPUT_NUMERIC_TIME = 1 << 10  # libnftables.h output flag: timeouts as plain seconds
_EXPIRES = re.compile(r"\bexpires (\d+)s\b")
NETNS_DIR = "/run/netns"
"""Where ``ip netns add`` pins named namespaces."""


class NftError(RuntimeError):
    """nft refused a command; the message holds nft's own diagnostic."""


class NftUnavailable(NftError):
    """libnftables cannot be used here: the library, a netlink socket or the namespace is missing."""


class LibNft:
    """One libnftables context, serialised by a lock (contexts are not thread-safe)."""

    def __init__(self, netns: str | None = None) -> None:
        """Open the context, inside ``netns`` when one is named; ``NftUnavailable`` when that cannot be done."""
        try:
            lib = ctypes.CDLL("libnftables.so.1", use_errno=True)
        except OSError as exc:
            raise NftUnavailable("libnftables.so.1 not found (Debian package libnftables1)") from exc
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
        self._ctx = in_netns(netns, lambda: lib.nft_ctx_new(0)) if netns else lib.nft_ctx_new(0)
        if not self._ctx:
            raise NftUnavailable("libnftables could not open a netlink socket")
        lib.nft_ctx_buffer_output(self._ctx)
        lib.nft_ctx_buffer_error(self._ctx)
        lib.nft_ctx_output_set_flags(self._ctx, _OUTPUT_NUMERIC_TIME)

    def run(self, script: str, *, check: bool = True) -> tuple[bool, str]:
        """Run one nft script as one transaction: (ok, stdout); with ``check`` a refusal raises ``NftError``."""
        with self._lock:
            if not self._ctx:
                raise NftError("the nftables context is closed")
            rc = self._lib.nft_run_cmd_from_buffer(self._ctx, script.encode())
            out = (self._lib.nft_ctx_get_output_buffer(self._ctx) or b"").decode()
            err = (self._lib.nft_ctx_get_error_buffer(self._ctx) or b"").decode()
        if rc != 0 and check:
            raise NftError(f"nft refused the command: {err.strip() or 'no diagnostic'}")
        return rc == 0, out

    def close(self) -> None:
        """Free the context and its socket (elements stay: the kernel expires them)."""
        with self._lock:
            if self._ctx:
                self._lib.nft_ctx_free(self._ctx)
                self._ctx = None


def in_netns(netns: str, fn):
    """Call ``fn`` with this thread in ``netns``, then return the thread to where it was."""
    import ctypes.util  # deferred: it pulls in subprocess, which the edge sensor never needs otherwise

    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        target = os.open(os.path.join(NETNS_DIR, netns), os.O_RDONLY)
        try:
            if libc.setns(target, _CLONE_NEWNET) != 0:
                raise NftUnavailable(
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


def address_set(ip: str) -> tuple[str, str]:
    """(normalised address, ``blocked_v4`` | ``blocked_v6``); ValueError when ``ip`` is not one address.

    ``::ffff:a.b.c.d`` arrives as IPv4 on the wire, so the v4 set is the one that
    matches it; a scoped IPv6 address names an interface, not a host, and is refused.
    """
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        raise ValueError(f"{ip!r} is not an IP address") from None
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.scope_id:
            raise ValueError(f"scoped address {ip!r} cannot be blocked")
        if addr.ipv4_mapped is not None:
            return str(addr.ipv4_mapped), "blocked_v4"
        return addr.compressed, "blocked_v6"
    return str(addr), "blocked_v4"


def element_expiry(get_element_output: str) -> int:
    """Seconds left on an element that ``get element`` printed; -1 when it has no timeout."""
    found = _EXPIRES.search(get_element_output)
    return int(found.group(1)) if found else -1
