"""Blocks in the kernel, in the nftables responder's own table layout, from a lean process.

``NftablesResponder.setup()`` (``connectors.nftables``) creates the table
``inet soc_agent`` with its ``blocked_v4`` / ``blocked_v6`` timeout sets and
drop chains; ``soc-agent edge`` runs it before the sensor starts. The sensor
then adds elements here with the very transaction the responder's
``execute`` uses (add + delete + add, so a repeat refreshes the timeout
atomically), through one libnftables context opened once: ~0.1-0.4 ms per
block, no fork. It does not import the responder itself because the
``connectors`` package pulls in every vendor mapping and pydantic (~50 MiB);
``tests/soc_agent/edge/test_edge_netns.py`` checks that the responder's
``verify()`` sees the edge's blocks.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import ipaddress
import os
import re
import threading

_CLONE_NEWNET = 0x40000000
_NUMERIC_TIME = 1 << 10
_EXPIRES = re.compile(r"\bexpires (\d+)s\b")
NETNS_DIR = "/run/netns"


class FirewallError(RuntimeError):
    """nftables refused a command or cannot be used here."""


def target(ip: str) -> tuple[str, str]:
    """(normalised address, set name), as the responder files it; ValueError when not one address."""
    addr = ipaddress.ip_address(ip)
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.scope_id:
            raise ValueError(f"scoped address {ip!r} cannot be blocked")
        if addr.ipv4_mapped is not None:
            return str(addr.ipv4_mapped), "blocked_v4"
        return addr.compressed, "blocked_v6"
    return str(addr), "blocked_v4"


class NftFirewall:
    """``block(ip, ttl)`` / ``unblock(ip)`` / ``remaining(ip)`` on ``inet <table>``, optionally in a netns."""

    mode = "nftables"

    def __init__(self, table: str = "soc_agent", netns: str | None = None) -> None:
        try:
            lib = ctypes.CDLL("libnftables.so.1", use_errno=True)
        except OSError as exc:
            raise FirewallError("libnftables.so.1 not found (Debian package libnftables1)") from exc
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
        self._lib, self.table, self.netns = lib, table, netns
        self._lock = threading.Lock()
        self._ctx = _in_netns(netns, lambda: lib.nft_ctx_new(0)) if netns else lib.nft_ctx_new(0)
        if not self._ctx:
            raise FirewallError("libnftables could not open a netlink socket")
        lib.nft_ctx_buffer_output(self._ctx)
        lib.nft_ctx_buffer_error(self._ctx)
        lib.nft_ctx_output_set_flags(self._ctx, _NUMERIC_TIME)

    def run(self, script: str, check: bool = True) -> tuple[bool, str]:
        """Run one nft script as one transaction."""
        with self._lock:
            if not self._ctx:
                raise FirewallError("firewall is closed")
            rc = self._lib.nft_run_cmd_from_buffer(self._ctx, script.encode())
            out = (self._lib.nft_ctx_get_output_buffer(self._ctx) or b"").decode()
            err = (self._lib.nft_ctx_get_error_buffer(self._ctx) or b"").decode()
        if rc != 0 and check:
            raise FirewallError(f"nft refused the command: {err.strip() or 'no diagnostic'}")
        return rc == 0, out

    def block(self, ip: str, ttl: int, extend_only: bool = False) -> None:
        """Drop ``ip`` for ``ttl`` seconds (a repeat restarts the timeout).

        ``extend_only``: leave a block that already lasts longer alone (one more netlink
        round trip; the responder's ``execute`` always does this).
        """
        if extend_only:
            left = self.remaining(ip)
            if left is not None and (left < 0 or left >= ttl):
                return
        addr, set_name = target(ip)
        s = f"inet {self.table} {set_name}"
        self.run(f"add element {s} {{ {addr} timeout {int(ttl)}s }}\ndelete element {s} {{ {addr} }}\n"
                 f"add element {s} {{ {addr} timeout {int(ttl)}s }}\n")

    def unblock(self, ip: str) -> None:
        """Lift a block; fine when there is none."""
        addr, set_name = target(ip)
        s = f"inet {self.table} {set_name}"
        self.run(f"add element {s} {{ {addr} timeout 1s }}\ndelete element {s} {{ {addr} }}\n")

    def remaining(self, ip: str) -> int | None:
        """Seconds left on the block, None when not blocked."""
        addr, set_name = target(ip)
        ok, out = self.run(f"get element inet {self.table} {set_name} {{ {addr} }}\n", check=False)
        if not ok:
            return None
        found = _EXPIRES.search(out)
        return int(found.group(1)) if found else -1

    def close(self) -> None:
        """Free the context (blocks stay: the kernel expires them)."""
        with self._lock:
            if self._ctx:
                self._lib.nft_ctx_free(self._ctx)
                self._ctx = None


class NullFirewall:
    """Records what it would block: for ``--dry-run`` and for hosts without nftables."""

    mode = "dry-run"

    def __init__(self) -> None:
        self.blocked: dict[str, int] = {}

    def block(self, ip: str, ttl: int, extend_only: bool = False) -> None:
        addr = target(ip)[0]
        if not extend_only or self.blocked.get(addr, 0) < ttl:
            self.blocked[addr] = ttl

    def unblock(self, ip: str) -> None:
        self.blocked.pop(target(ip)[0], None)

    def remaining(self, ip: str) -> int | None:
        return self.blocked.get(target(ip)[0])

    def close(self) -> None:
        pass


def _in_netns(netns: str, fn):
    """Call ``fn`` with this thread inside ``netns``, then return (the netlink socket stays there)."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        fd = os.open(os.path.join(NETNS_DIR, netns), os.O_RDONLY)
        try:
            if libc.setns(fd, _CLONE_NEWNET) != 0:
                raise FirewallError(f"cannot enter network namespace {netns!r}: {os.strerror(ctypes.get_errno())}")
        finally:
            os.close(fd)
        try:
            return fn()
        finally:
            if libc.setns(home, _CLONE_NEWNET) != 0:
                raise RuntimeError(f"could not leave network namespace {netns!r}")
    finally:
        os.close(home)
