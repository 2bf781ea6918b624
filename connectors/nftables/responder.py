"""``NftablesResponder``: ``firewall.block`` as elements of kernel-expiring nftables sets.

Layout it owns (one dedicated table, nothing else on the host is touched)::

    table inet soc_agent {
        set blocked_v4 { type ipv4_addr; flags timeout; }
        set blocked_v6 { type ipv6_addr; flags timeout; }
        chain input {
            type filter hook input priority filter - 10; policy accept;
            ip saddr @blocked_v4 drop
            ip6 saddr @blocked_v6 drop
        }
    }

Every block carries a timeout, so the kernel removes the element when the TTL
runs out even if soc-agent is down; ``expire()`` has nothing to do. A drop in
this table is final whatever other tables accept.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from connectors.nftables._backend import NftBackend, open_backend
from connectors.nftables._errors import NftablesError
from soc_agent.libnft import address_set, element_expiry
from soc_agent.types import EntityKind, ProposedAction

_BLOCK, _UNBLOCK = "block_ip", "unblock_ip"
_EFFECT = "blocked_ip"
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,31}$")
_HOOKS = frozenset({"input", "forward"})


class NftablesResponder:
    """Blocks source addresses in the kernel with nftables; capability ``firewall.block``.

    ``netns``: run every command inside this named network namespace (``ip netns``).
    ``table``: the ``inet`` table this responder owns; ``teardown()`` deletes it.
    ``hooks``: chains to drop in: ``input`` (this host) and optionally ``forward`` (a gateway).
    ``mode``: ``lib`` (libnftables in-process, fastest), ``cli`` (``nft -f -`` per call)
    or ``auto`` (lib when libnftables loads). Construction raises ``NftablesUnavailable``
    when nft, privileges or the namespace are missing. Call ``setup()`` before blocking.
    """

    name = "nftables"
    capabilities = frozenset({"firewall.block"})

    def __init__(self, *, netns: str | None = None, table: str = "soc_agent",
                 hooks: tuple[str, ...] = ("input",), mode: str = "auto") -> None:
        if not _NAME.match(table):
            raise ValueError(f"table name {table!r} must be an identifier of at most 32 characters")
        if not hooks or not set(hooks) <= _HOOKS:
            raise ValueError(f"hooks must be a non-empty subset of {sorted(_HOOKS)}, not {hooks!r}")
        self.netns, self.table, self.hooks = netns, table, tuple(dict.fromkeys(hooks))
        self._nft: NftBackend = open_backend(mode, netns)

    @property
    def mode(self) -> str:
        """The backend actually in use: ``lib`` or ``cli``."""
        return self._nft.mode

    # ---- lifecycle ----------------------------------------------------------------------------

    def setup(self) -> None:
        """Create the table, sets and drop chains; idempotent, and keeps existing blocks."""
        t = f"inet {self.table}"
        lines = [
            f"add table {t}",
            f"add set {t} blocked_v4 {{ type ipv4_addr; flags timeout; }}",
            f"add set {t} blocked_v6 {{ type ipv6_addr; flags timeout; }}",
        ]
        for hook in self.hooks:
            # Flush and refill in the same transaction: rules never duplicate and never lapse.
            lines += [
                f"add chain {t} {hook} {{ type filter hook {hook} priority filter - 10; policy accept; }}",
                f"flush chain {t} {hook}",
                f"add rule {t} {hook} ip saddr @blocked_v4 drop",
                f"add rule {t} {hook} ip6 saddr @blocked_v6 drop",
            ]
        self._nft.run("\n".join(lines) + "\n")

    def teardown(self) -> None:
        """Delete the table and every block in it; fine when it is already gone."""
        self._nft.run(f"add table inet {self.table}\ndelete table inet {self.table}\n")

    def close(self) -> None:
        """Release the netlink socket (which also pins the namespace). Blocks stay in place."""
        self._nft.close()

    def __enter__(self) -> NftablesResponder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- Responder protocol -------------------------------------------------------------------

    def execute(self, action: ProposedAction, case_id: str, action_id: int, now: datetime) -> dict[str, Any]:
        """Block (or, for ``unblock_ip``, lift) the target address.

        Blocking an address already blocked extends its timeout to ``ttl_seconds`` from
        now when that is later than its current expiry, and otherwise leaves it alone:
        a repeat never shortens a block and never errors.
        """
        if action.name == _UNBLOCK:
            return self.rollback(action, case_id, now)
        if action.name != _BLOCK:
            raise NftablesError(f"nftables responder cannot run {action.name}")
        ttl = _ttl(action)
        ip, set_name = self._target(action)
        remaining = self._remaining(ip, set_name)
        base = {"effect": _EFFECT, "target": ip, "set": f"inet {self.table} {set_name}"}
        if remaining is not None and (remaining < 0 or remaining >= ttl):
            # Present with a later expiry (or none at all): nothing to extend.
            expires = None if remaining < 0 else (now + timedelta(seconds=remaining)).isoformat()
            return {**base, "already_active": True, "expires_at": expires}
        s = f"inet {self.table} {set_name}"
        # add (no-op if present) + delete + add in one transaction: the element is replaced with a
        # fresh timeout atomically, on any kernel, with no instant where the address is let through.
        self._nft.run(f"add element {s} {{ {ip} timeout {ttl}s }}\n"
                      f"delete element {s} {{ {ip} }}\n"
                      f"add element {s} {{ {ip} timeout {ttl}s }}\n")
        return {**base, "already_active": remaining is not None,
                "expires_at": (now + timedelta(seconds=ttl)).isoformat()}

    def verify(self, action: ProposedAction) -> bool:
        """True when the target address is an element of its set (and so is being dropped)."""
        ip, set_name = self._target(action)
        return self._remaining(ip, set_name) is not None

    def rollback(self, action: ProposedAction, case_id: str, now: datetime) -> dict[str, Any]:
        """Remove the address from its set; an address not (or no longer) blocked is fine."""
        ip, set_name = self._target(action)
        s = f"inet {self.table} {set_name}"
        # Add-then-delete makes the delete unconditional without relying on an error for "absent".
        self._nft.run(f"add element {s} {{ {ip} timeout 1s }}\ndelete element {s} {{ {ip} }}\n")
        return {"effect": _EFFECT, "target": ip, "lifted": True}

    def expire(self, now: datetime) -> list[tuple[str, str, int | None]]:
        """Always ``[]``: every element carries a kernel timeout, so the kernel lifts blocks itself.

        The executor's store-side view of a block (``expires_at`` on the action row) is
        kept from ``ttl_seconds`` at execute time; nothing needs lifting here.
        """
        return []

    # ---- helpers ------------------------------------------------------------------------------

    def _target(self, action: ProposedAction) -> tuple[str, str]:
        """The normalised address and the set it belongs in; refuses anything but one IP."""
        if action.target is None or action.target.kind is not EntityKind.IP:
            raise NftablesError(f"{action.name} needs an ip target")
        try:
            return address_set(action.target.value)
        except ValueError as exc:
            raise NftablesError(str(exc)) from None

    def _remaining(self, ip: str, set_name: str) -> int | None:
        """Seconds until the element expires, -1 for an element without timeout, None when absent."""
        ok, out = self._nft.run(f"get element inet {self.table} {set_name} {{ {ip} }}\n", check=False)
        if not ok:
            return None
        return element_expiry(out)


def _ttl(action: ProposedAction) -> int:
    """``params.ttl_seconds`` as a positive whole number of seconds."""
    ttl = action.params.get("ttl_seconds")
    if isinstance(ttl, bool) or not isinstance(ttl, (int, float, str)):
        raise NftablesError(f"{action.name} needs params.ttl_seconds, a positive number of seconds")
    try:
        seconds = int(ttl)
    except ValueError:
        raise NftablesError(f"ttl_seconds {ttl!r} is not a whole number of seconds") from None
    if seconds <= 0 or seconds != float(ttl):
        raise NftablesError(f"ttl_seconds must be a positive whole number, not {ttl!r}")
    return seconds


class ConfiguredNftables(NftablesResponder):
    """The kernel firewall as a configured responder (``connectors.yml``): no HTTP client; set up at start."""

    def __init__(self, client: Any = None, *, netns: str | None = None, table: str = "soc_agent",
                 hooks: list[str] | None = None, mode: str = "auto", name: str = "nftables") -> None:
        super().__init__(netns=netns, table=table, hooks=tuple(hooks or ("input",)), mode=mode)
        self.name = name
        self.setup()
