"""The catalog of response actions: each one's tier, capability and rollback.

Playbooks may only name actions from this catalog, and the guard judges an
action by what the catalog says about it, never by what a playbook or a
model claims. Rollback-only actions (``unblock_ip``...) are here so that a
rollback can be executed through the same responders.
"""

from __future__ import annotations

from soc_agent.types import ActionSpec, EntityKind, Tier

_K = EntityKind
_SPECS = [
    # observe: always allowed without approval
    ActionSpec(name="annotate_case", tier=Tier.OBSERVE, capability="case.annotate"),
    ActionSpec(name="notify_analyst", tier=Tier.OBSERVE, capability="notify.send"),
    ActionSpec(name="open_ticket", tier=Tier.OBSERVE, capability="ticket.create", rollback="close_ticket"),
    # dismiss: closing is a decision that nobody needs to look; the guard gates it (DESIGN.md)
    ActionSpec(name="close_case", tier=Tier.DISMISS, capability="case.close", rollback="reopen_case",
               description="close the case as benign or false positive"),
    # contain_soft: reversible, narrow blast radius
    ActionSpec(name="block_ip", tier=Tier.CONTAIN_SOFT, capability="firewall.block", target_kind=_K.IP,
               rollback="unblock_ip", description="block an address with a TTL"),
    ActionSpec(name="block_domain", tier=Tier.CONTAIN_SOFT, capability="dns.block", target_kind=_K.DOMAIN,
               rollback="unblock_domain", description="sinkhole a domain with a TTL"),
    ActionSpec(name="revoke_sessions", tier=Tier.CONTAIN_SOFT, capability="idp.revoke_sessions",
               target_kind=_K.USER),
    ActionSpec(name="force_mfa", tier=Tier.CONTAIN_SOFT, capability="idp.force_mfa", target_kind=_K.USER),
    ActionSpec(name="quarantine_email", tier=Tier.CONTAIN_SOFT, capability="email.quarantine",
               target_kind=_K.EMAIL, rollback="release_email"),
    ActionSpec(name="revoke_oauth_grant", tier=Tier.CONTAIN_SOFT, capability="idp.revoke_grant",
               target_kind=_K.CLOUD_RESOURCE, rollback="restore_oauth_grant"),
    # contain_hard: disruptive, dual conditions
    ActionSpec(name="isolate_host", tier=Tier.CONTAIN_HARD, capability="edr.isolate", target_kind=_K.HOST,
               rollback="release_host"),
    ActionSpec(name="disable_account", tier=Tier.CONTAIN_HARD, capability="idp.disable_user",
               target_kind=_K.USER, rollback="enable_account"),
    ActionSpec(name="kill_process", tier=Tier.CONTAIN_HARD, capability="edr.kill_process",
               target_kind=_K.PROCESS),
    # destructive: approval always
    ActionSpec(name="reimage_host", tier=Tier.DESTRUCTIVE, capability="edr.reimage", target_kind=_K.HOST),
    ActionSpec(name="delete_file", tier=Tier.DESTRUCTIVE, capability="edr.delete_file",
               target_kind=_K.FILE_HASH),
]

# Rollback actions undo the ones above; they are run by `actions rollback`, not planned.
_ROLLBACKS = [
    ActionSpec(name="close_ticket", tier=Tier.OBSERVE, capability="ticket.close"),
    ActionSpec(name="reopen_case", tier=Tier.OBSERVE, capability="case.close"),
    ActionSpec(name="unblock_ip", tier=Tier.OBSERVE, capability="firewall.block", target_kind=_K.IP),
    ActionSpec(name="unblock_domain", tier=Tier.OBSERVE, capability="dns.block", target_kind=_K.DOMAIN),
    ActionSpec(name="release_email", tier=Tier.OBSERVE, capability="email.quarantine", target_kind=_K.EMAIL),
    ActionSpec(name="restore_oauth_grant", tier=Tier.OBSERVE, capability="idp.revoke_grant",
               target_kind=_K.CLOUD_RESOURCE),
    ActionSpec(name="release_host", tier=Tier.OBSERVE, capability="edr.isolate", target_kind=_K.HOST),
    ActionSpec(name="enable_account", tier=Tier.OBSERVE, capability="idp.disable_user", target_kind=_K.USER),
]

CATALOG: dict[str, ActionSpec] = {spec.name: spec for spec in _SPECS}
"""Plannable actions by name."""

ROLLBACKS: dict[str, ActionSpec] = {spec.name: spec for spec in _ROLLBACKS}
"""Rollback actions by name."""

# Actions that take a TTL; the guard caps it and gives a missing or invalid one the policy default.
TTL_ACTIONS = frozenset({"block_ip", "block_domain"})


def action_spec(name: str) -> ActionSpec:
    """The catalog entry for a plannable action; KeyError names the unknown action."""
    try:
        return CATALOG[name]
    except KeyError:
        raise KeyError(f"unknown action {name!r}; known: {', '.join(sorted(CATALOG))}") from None
