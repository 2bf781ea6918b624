"""Carry a decision out beyond the tool call, through the product's own responders.

A ``deny`` stops one call; ``isolate_agent`` and ``remove_permissions`` are
about the agent, so an enforcement point may also act outside the agent's
process, where a compromised agent cannot undo it:

* ``isolate_agent``: drop the agent's OS user's outbound traffic in the
  kernel (``EgressBlock``) and revoke its sessions and tokens at the IdP
  (``IdpRevoke`` over the Okta or Entra responder in ``connectors/``);
* ``remove_permissions`` naming ``net:outbound``: the same kernel drop, for
  the decision's ``ttl_s`` when it has one (the kernel lifts it), otherwise
  until a person lifts it.

The kernel layout (one dedicated table, nothing else on the host touched)::

    table inet soc_agent_pdp {
        set agent_uids { type uid; flags timeout; }
        chain output {
            type filter hook output priority filter - 10; policy accept;
            meta skuid @agent_uids oifname != "lo" drop
        }
    }

Loopback stays open on purpose: the agent must still reach a local decision
point (which then keeps refusing it) rather than hang.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from connectors.nftables._backend import NftBackend, open_backend
from connectors.base import Responder, ResponderError
from soc_agent.types import Entity, EntityKind, ProposedAction, Tier

OUTBOUND = "net:outbound"
"""The permission whose removal is enforced in the kernel as well as in the agent's runtime."""
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,31}$")
_EXPIRES = re.compile(r"\bexpires (\d+)s\b")
_MAX_UID = 2**32 - 2  # (uid_t)-1 means "no user" to the kernel


@dataclass(frozen=True)
class AgentAccount:
    """How an agent is known outside the decision point."""

    uid: int | None = None
    """The OS user its tools run as (the kernel drop keys on it); None: no kernel enforcement."""
    idp_user: str | None = None
    """Its login or UPN at the IdP (tokens revoked on isolation); None: no IdP enforcement."""


class EgressBlock:
    """Drops an agent OS user's outbound traffic with nftables (``meta skuid``), optionally in a netns.

    Uses the nftables responder's backend (``lib``: libnftables in process, ``cli``:
    ``nft -f -``). Construction raises ``NftablesUnavailable`` when nft, privileges or
    the namespace are missing. Call ``setup()`` once before ``block()``.
    """

    def __init__(self, *, netns: str | None = None, table: str = "soc_agent_pdp", mode: str = "auto") -> None:
        if not _NAME.match(table):
            raise ValueError(f"table name {table!r} must be an identifier of at most 32 characters")
        self.netns, self.table = netns, table
        self._nft: NftBackend = open_backend(mode, netns)

    def setup(self) -> None:
        """Create the table, the uid set and the drop chain; idempotent, keeps existing blocks."""
        t = f"inet {self.table}"
        self._nft.run("\n".join([
            f"add table {t}",
            f"add set {t} agent_uids {{ type uid; flags timeout; }}",
            f"add chain {t} output {{ type filter hook output priority filter - 10; policy accept; }}",
            # Flush and refill in one transaction: the rule never duplicates and never lapses.
            f"flush chain {t} output",
            f'add rule {t} output meta skuid @agent_uids oifname != "lo" drop',
        ]) + "\n")

    def teardown(self) -> None:
        """Delete the table and every block in it; fine when it is already gone."""
        self._nft.run(f"add table inet {self.table}\ndelete table inet {self.table}\n")

    def block(self, uid: int, ttl_s: int | None = None) -> dict[str, Any]:
        """Drop ``uid``'s outbound traffic, for ``ttl_s`` seconds (kernel-expired) or until lifted.

        A block without TTL replaces a TTL'd one; a TTL'd repeat never shortens a block.
        """
        uid = _uid(uid)
        if ttl_s is not None and (isinstance(ttl_s, bool) or not isinstance(ttl_s, int) or ttl_s <= 0):
            raise ResponderError(f"ttl_s must be a positive whole number of seconds, not {ttl_s!r}")
        remaining = self.remaining(uid)
        s = f"inet {self.table} agent_uids"
        if remaining is not None and (remaining < 0 or (ttl_s is not None and remaining >= ttl_s)):
            return {"effect": "egress_dropped", "uid": uid, "already_active": True}
        timeout = f" timeout {ttl_s}s" if ttl_s else ""
        # add (no-op if present) + delete + add: replaced atomically, never a gap.
        self._nft.run(f"add element {s} {{ {uid}{timeout} }}\ndelete element {s} {{ {uid} }}\n"
                      f"add element {s} {{ {uid}{timeout} }}\n")
        return {"effect": "egress_dropped", "uid": uid, "ttl_s": ttl_s, "already_active": remaining is not None}

    def unblock(self, uid: int) -> dict[str, Any]:
        """Lift the drop for ``uid``; a uid not blocked is fine."""
        uid = _uid(uid)
        s = f"inet {self.table} agent_uids"
        self._nft.run(f"add element {s} {{ {uid} timeout 1s }}\ndelete element {s} {{ {uid} }}\n")
        return {"effect": "egress_dropped", "uid": uid, "lifted": True}

    def remaining(self, uid: int) -> int | None:
        """Seconds left on ``uid``'s block, -1 for a block without TTL, None when not blocked."""
        ok, out = self._nft.run(f"get element inet {self.table} agent_uids {{ {_uid(uid)} }}\n", check=False)
        if not ok:
            return None
        found = _EXPIRES.search(out)
        return int(found.group(1)) if found else -1

    def close(self) -> None:
        """Release the netlink socket; blocks stay in the kernel."""
        self._nft.close()


def _uid(uid: object) -> int:
    if isinstance(uid, bool) or not isinstance(uid, int) or not 0 <= uid <= _MAX_UID:
        raise ResponderError(f"uid must be a whole number 0..{_MAX_UID}, not {uid!r}")
    return uid


class IdpRevoke:
    """Revokes an agent identity's sessions and tokens through an IdP responder (Okta, Entra).

    ``disable``: also suspend / block sign-in for the account (rollback through the
    responder's own ``rollback``), not only clear what it holds now.
    """

    def __init__(self, responder: Responder, *, disable: bool = False) -> None:
        self.responder = responder
        self.disable = disable

    def revoke(self, idp_user: str, decision_id: str, now: datetime | None = None) -> list[dict[str, Any]]:
        """Run ``revoke_sessions`` (and ``disable_account`` with ``disable``) for ``idp_user``."""
        now = now or datetime.now(UTC)
        target = Entity(kind=EntityKind.USER, value=idp_user)
        actions = [ProposedAction(name="revoke_sessions", tier=Tier.CONTAIN_SOFT,
                                  capability="idp.revoke_sessions", target=target, playbook="pdp")]
        if self.disable:
            actions.append(ProposedAction(name="disable_account", tier=Tier.CONTAIN_HARD,
                                          capability="idp.disable_user", target=target,
                                          rollback="enable_account", playbook="pdp"))
        return [self.responder.execute(action, f"pdp:{decision_id}", 0, now) for action in actions]


class Enforcer:
    """Maps a decision for an agent to effects in the kernel and at the IdP.

    ``accounts``: agent id -> its ``AgentAccount``; an agent not listed gets nothing
    beyond what its runtime enforces. ``apply`` never turns a decision into a
    weaker one: a failed effect is reported in its result, never swallowed silently.
    """

    def __init__(self, accounts: Mapping[str, AgentAccount], *, egress: EgressBlock | None = None,
                 idp: IdpRevoke | None = None) -> None:
        self.accounts = dict(accounts)
        self.egress = egress
        self.idp = idp

    def apply(self, agent_id: str, decision: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Carry out ``decision`` (the wire response) for ``agent_id``; returns what was done.

        Each entry is ``{"effect", ...}``; a failure is ``{"effect", "error"}``.
        """
        account = self.accounts.get(agent_id)
        outcome = decision.get("decision")
        if account is None or outcome not in ("isolate_agent", "remove_permissions"):
            return []
        obligations = decision.get("obligations") or {}
        removed = set(obligations.get("remove_permissions") or ())
        done: list[dict[str, Any]] = []
        if account.uid is not None and self.egress is not None and (
                outcome == "isolate_agent" or OUTBOUND in removed):
            # Isolation holds until a person lifts it; a removed permission may carry a TTL.
            ttl = obligations.get("ttl_s") if outcome == "remove_permissions" else None
            done.append(_attempt("egress_dropped", lambda: self.egress.block(account.uid, ttl or None)))
        if outcome == "isolate_agent" and account.idp_user and self.idp is not None:
            done.append(_attempt("idp_revoked", lambda: {
                "effect": "idp_revoked",
                "results": self.idp.revoke(account.idp_user, str(decision.get("decision_id", "")))}))
        return done


def _attempt(effect: str, run) -> dict[str, Any]:
    try:
        return run()
    except (ResponderError, OSError) as exc:
        return {"effect": effect, "error": str(exc)}
