"""Two ways to hand an nft script to the kernel, behind one ``run(script)`` call.

* ``LibNft``: one libnftables context for the responder's life (``soc_agent.libnft``,
  the binding the edge sensor uses too): no fork, no exec, ~0.1 ms a call.
* ``CliNft`` runs ``[ip netns exec NAME] nft -f -`` per call: slower (a fork and
  two execs, milliseconds) but needs only the ``nft`` binary.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import Protocol

from connectors.nftables._errors import NftablesError, NftablesUnavailable
from soc_agent import libnft
from soc_agent.libnft import NETNS_DIR

_CAP_NET_ADMIN = 12
_CAP_SYS_ADMIN = 21


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
    """libnftables through ctypes (``soc_agent.libnft``), its errors in the responder's family."""

    mode = "lib"

    def __init__(self, netns: str | None) -> None:
        try:
            self._nft = libnft.LibNft(netns)
        except libnft.NftError as exc:
            raise NftablesUnavailable(str(exc)) from exc

    def run(self, script: str, *, check: bool = True) -> tuple[bool, str]:
        try:
            return self._nft.run(script, check=check)
        except libnft.NftError as exc:
            raise NftablesError(str(exc)) from exc

    def close(self) -> None:
        self._nft.close()


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
