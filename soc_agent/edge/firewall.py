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

from soc_agent.libnft import LibNft, NftError, address_set, element_expiry

FirewallError = NftError
"""nftables refused a command or cannot be used here (``soc_agent.libnft``'s error)."""


def target(ip: str) -> tuple[str, str]:
    """(normalised address, set name), as the responder files it; ValueError when not one address."""
    return address_set(ip)


class NftFirewall:
    """``block(ip, ttl)`` / ``unblock(ip)`` / ``remaining(ip)`` on ``inet <table>``, optionally in a netns."""

    mode = "nftables"

    def __init__(self, table: str = "soc_agent", netns: str | None = None) -> None:
        self.table, self.netns = table, netns
        self._nft = LibNft(netns)

    def run(self, script: str, check: bool = True) -> tuple[bool, str]:
        """Run one nft script as one transaction."""
        return self._nft.run(script, check=check)

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
        return element_expiry(out)

    def close(self) -> None:
        """Free the context (blocks stay: the kernel expires them)."""
        self._nft.close()


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
