"""The guard: the policy decision point every action passes, pure and fast.

``decide(action, context, policy)`` returns ``allow``, ``needs_approval`` or
``deny`` with every reason that contributed. Each check can only make the
outcome stricter (allow < needs_approval < deny); nothing a playbook, a
model or an approval says can loosen a ``deny``. The action's tier and
capability come from the catalog, never from the proposal itself.

Order of precedence, strictest wins:

* deny: capability not granted; kill switch; a block of a never-block
  address; containment on a benign or false-positive verdict; a policy rule.
* needs_approval: destructive tier; allowlisted target; crown-jewel asset;
  executive or privileged identity; an incident class that has not earned
  autonomy (no ``autonomy.yml`` at all: supervised, every class); confidence
  or independent evidence below the tier's bar; block-rate limit exceeded; a
  policy rule. Closing a case (tier ``dismiss``) needs a non-malicious verdict
  on positive benign evidence above the policy's floor, in an earned class,
  and never happens alone with a high/critical alert, an intel hit or
  evidence worth containment.
* allow: everything else. An approval turns needs_approval into allow;
  destructive actions and containment of a crown jewel need the approvals
  of two distinct people (the two-person rule, ``two_person_reason``).

Shadow mode does not change the outcome, only whether it executes
(``Decision.executes``); the notes show what would have happened.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

import cel

from soc_agent.actions import CATALOG, TTL_ACTIONS
from soc_agent.policy import Policy
from soc_agent.types import (Decision, EntityKind, IdentityRole, Outcome, ProposedAction, Reason, RunMode, Severity,
                             Tier, Verdict)
from soc_agent.wording import a_or_an

_CGNAT = ipaddress.ip_network("100.64.0.0/10")
# contain_hard's dual conditions (DESIGN.md) are floors the policy can raise, never lower.
_HARD_MIN_EVIDENCE, _HARD_MIN_ASSET_TIER = 2, 2
_ALWAYS_APPROVE_ROLES = frozenset({IdentityRole.EXECUTIVE})
_STRICTNESS = {Outcome.ALLOW: 0, Outcome.NEEDS_APPROVAL: 1, Outcome.DENY: 2}


@dataclass(frozen=True)
class GuardContext:
    """Everything the guard may consider about a case, gathered by the guard node."""

    verdict: Verdict
    confidence: float
    asset_tier: int = 3
    """Most critical asset tier involved (0 = crown jewel); 3 when none is known."""
    identity_roles: frozenset[IdentityRole] = frozenset()
    """Roles of the identities involved in the case."""
    privileged_identity: bool = False
    """Any identity involved holds privilege."""
    independent_evidence: int = 0
    """Distinct evidence sources backing a malicious verdict (rule, intel, threshold...)."""
    allowlisted_target: str | None = None
    """The allowlist reason when the action's target is allowlisted."""
    recent_blocks: int = 0
    """Blocks executed within the policy's rate window."""
    mode: RunMode = RunMode.SHADOW
    approved_by: str | None = None
    """Set when a person approved this action (approval queue)."""
    approvers: tuple[str, ...] = ()
    """Everyone who approved this action; when empty, ``approved_by`` alone (the two-person rule counts these)."""
    flags: frozenset[str] = field(default_factory=frozenset)
    """Extra facts for policy rules, e.g. ``injection_suspected``."""
    responder_capabilities: frozenset[str] | None = None
    """Capabilities some configured responder was granted; None when not known (pure policy checks)."""
    incident_class: str | None = None
    """The matched playbook's incident class, for earned autonomy (``Policy.autonomy``)."""
    max_severity: Severity = Severity.INFORMATIONAL
    """The highest severity of any alert in the case."""
    intel_hit: bool = False
    """Some entity of the case is a known-bad indicator."""
    containment_signal: bool = False
    """Some evidence is worth containment on its own: a threshold, a site signal, the vendor's malicious verdict."""
    benign_evidence: bool = False
    """The verdict rests on positive evidence of benign (an allowlist, a benign signal, the vendor's own benign
    determination, learned history or the learned model with enough history)."""


    @property
    def approver_names(self) -> frozenset[str]:
        """The distinct people who approved this action."""
        names = self.approvers or ((self.approved_by,) if self.approved_by else ())
        return frozenset(n.strip() for n in names if n and n.strip())


def two_person_reason(tier: Tier, asset_tier: int, policy: Policy) -> str | None:
    """Why an action needs two distinct approvers (destructive, or containment of a crown jewel), else None."""
    if tier is Tier.DESTRUCTIVE:
        return "destructive actions need two distinct approvers"
    if tier not in (Tier.OBSERVE, Tier.DISMISS) and asset_tier <= policy.crown_jewel_tier:
        return f"crown-jewel asset (tier {asset_tier}) actions need two distinct approvers"
    return None


class _Verdicts:
    def __init__(self) -> None:
        self.outcome = Outcome.ALLOW
        self.reasons: list[Reason] = []

    def add(self, outcome: Outcome, reason: str) -> None:
        if _STRICTNESS[outcome] > _STRICTNESS[self.outcome]:
            self.outcome = outcome
        self.reasons.append(Reason(outcome, reason))


_PROGRAMS: dict[str, object] = {}


def _program(source: str):
    """Policy rules compile once; decide() runs thousands of times a minute."""
    program = _PROGRAMS.get(source)
    if program is None:
        program = _PROGRAMS[source] = cel.compile(source)
    return program


def _never_block_reason(value: str, policy: Policy) -> str | None:
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return f"{value!r} is not an IP address"
    # Our own ranges win over allow_blocking: we never block ourselves.
    for cidr in policy.block.own_ranges:
        if address in ipaddress.ip_network(cidr, strict=False):
            return f"{value} is in our own range {cidr}"
    for cidr in policy.block.allow_blocking:
        if address in ipaddress.ip_network(cidr, strict=False):
            return None
    if policy.block.never_block_private and address in _CGNAT:
        return f"{value} is a carrier-grade NAT (shared) address"
    if policy.block.never_block_private:
        for label, hit in (
            ("private", address.is_private), ("loopback", address.is_loopback),
            ("link-local", address.is_link_local), ("multicast", address.is_multicast),
            ("reserved", address.is_reserved), ("unspecified", address.is_unspecified),
        ):
            if hit:
                return f"{value} is {a_or_an(label)} address"
    return None


def _cel_context(action: ProposedAction, tier: Tier, ctx: GuardContext) -> dict:
    return {
        "action": action.name,
        "tier": str(tier),
        "target": action.target.value if action.target else "",
        "target_kind": str(action.target.kind) if action.target else "",
        "verdict": str(ctx.verdict),
        "confidence": float(ctx.confidence),
        "asset_tier": ctx.asset_tier,
        "identity_roles": sorted(str(r) for r in ctx.identity_roles),
        "privileged": ctx.privileged_identity,
        "flags": sorted(ctx.flags),
        "mode": str(ctx.mode),
        "incident_class": ctx.incident_class or "",
    }


def decide(action: ProposedAction, ctx: GuardContext, policy: Policy) -> Decision:
    """Judge one proposed action. Pure: same inputs, same decision."""
    spec = CATALOG.get(action.name)
    if spec is None:
        return Decision(outcome=Outcome.DENY, action=action, mode=ctx.mode,
                        reasons=[Reason(Outcome.DENY, f"{action.name!r} is not in the action catalog")])
    # The catalog is the authority on what an action is, whatever the proposal claims.
    action = action.model_copy(update={"tier": spec.tier, "capability": spec.capability,
                                       "rollback": spec.rollback, "params": dict(action.params)})
    tier = spec.tier
    out = _Verdicts()
    out.add(Outcome.ALLOW, f"{action.name} is tier {tier}")

    if spec.capability not in policy.granted_capabilities:
        out.add(Outcome.DENY, f"capability {spec.capability} is not granted to any responder")
    elif ctx.responder_capabilities is not None and spec.capability not in ctx.responder_capabilities:
        out.add(Outcome.DENY, f"no configured responder holds capability {spec.capability}")
    if spec.target_kind is not None and (action.target is None or action.target.kind != spec.target_kind):
        out.add(Outcome.DENY, f"{action.name} needs a {spec.target_kind} target")

    if tier is Tier.DISMISS:
        _check_dismiss(ctx, policy, out)
    elif tier is not Tier.OBSERVE:
        _check_containment(action, tier, ctx, policy, out)
    if "reasoner_disagreement" in ctx.flags:
        out.add(Outcome.NEEDS_APPROVAL, "the model and the evidence scoring disagree: a person decides")
    if "injection_suspected" in ctx.flags and (
            action.name == "close_case" or ctx.verdict in (Verdict.BENIGN_POSITIVE, Verdict.FALSE_POSITIVE)):
        out.add(Outcome.NEEDS_APPROVAL, "instruction-like text in the alert data: never closed as benign "
                                        "without a person")
    if action.name in TTL_ACTIONS:
        _check_block(action, ctx, policy, out)

    cel_ctx = None
    for rule in policy.rules:
        cel_ctx = cel_ctx or cel.Context(_cel_context(action, tier, ctx))
        try:
            hit = bool(_program(rule.when).execute(cel_ctx))
        except Exception:  # a rule that cannot be evaluated on this case must not let it through
            hit = True
        if hit:
            out.add(rule.outcome, f"policy rule {rule.name}: {rule.reason}")

    approvers = ctx.approver_names
    if out.outcome is Outcome.NEEDS_APPROVAL and approvers:
        two = two_person_reason(tier, ctx.asset_tier, policy)
        if two and len(approvers) < 2:
            # The two-person rule: one approval never lifts a destructive or crown-jewel action.
            out.reasons.append(Reason(Outcome.NEEDS_APPROVAL, f"two-person rule: {two}; approved so far by "
                                                              f"{', '.join(sorted(approvers))} only"))
        else:
            out.outcome = Outcome.ALLOW
            out.reasons.append(Reason(Outcome.ALLOW, f"approved by {' and '.join(sorted(approvers))}"))
    if ctx.mode is RunMode.SHADOW and out.outcome is Outcome.ALLOW:
        out.reasons.append(Reason(Outcome.ALLOW, "shadow mode: recorded, not executed"))
    return Decision(outcome=out.outcome, reasons=out.reasons, action=action, mode=ctx.mode)


def _check_autonomy(ctx: GuardContext, policy: Policy, out: _Verdicts) -> None:
    if policy.autonomy is None:
        # A fresh install is supervised: autonomy above observe is earned per class in shadow mode.
        out.add(Outcome.NEEDS_APPROVAL, "no autonomy file: this install runs supervised until a shadow run "
                                        "promotes the class (autonomy.yml)")
    elif policy.autonomy.get(ctx.incident_class or "unclassified") != "autonomous":
        out.add(Outcome.NEEDS_APPROVAL, f"incident class {ctx.incident_class or 'unclassified'} has not earned "
                                        f"autonomy (autonomy.yml)")


def _check_dismiss(ctx: GuardContext, policy: Policy, out: _Verdicts) -> None:
    """Closing without a person: a non-malicious verdict on positive evidence, sure enough, in an earned class."""
    if policy.kill_switch:
        out.add(Outcome.NEEDS_APPROVAL, "kill switch engaged: a person closes cases")
    if ctx.verdict not in (Verdict.BENIGN_POSITIVE, Verdict.FALSE_POSITIVE):
        out.add(Outcome.NEEDS_APPROVAL, f"the verdict is {ctx.verdict}: only a person closes such a case")
    if not ctx.benign_evidence:
        out.add(Outcome.NEEDS_APPROVAL, "no positive evidence of benign: absence of evidence never closes a case")
    if ctx.max_severity.rank >= Severity.HIGH.rank:
        out.add(Outcome.NEEDS_APPROVAL, f"an alert of severity {ctx.max_severity}: never closed without a person")
    if ctx.intel_hit:
        out.add(Outcome.NEEDS_APPROVAL, "an entity is a known-bad indicator: never closed without a person")
    if ctx.containment_signal:
        out.add(Outcome.NEEDS_APPROVAL, "evidence worth containment: never closed without a person")
    if not ctx.confidence >= policy.dismiss.min_confidence:
        out.add(Outcome.NEEDS_APPROVAL,
                f"confidence {ctx.confidence:.2f} below {policy.dismiss.min_confidence:.2f} to close on its own")
    _check_autonomy(ctx, policy, out)


def _check_containment(action: ProposedAction, tier: Tier, ctx: GuardContext, policy: Policy,
                       out: _Verdicts) -> None:
    if policy.kill_switch:
        out.add(Outcome.DENY, "kill switch engaged: nothing above observe runs")
    if tier is Tier.DESTRUCTIVE:
        out.add(Outcome.NEEDS_APPROVAL, "destructive actions always need approval")
    if ctx.verdict in (Verdict.BENIGN_POSITIVE, Verdict.FALSE_POSITIVE):
        out.add(Outcome.DENY, f"containment on a {ctx.verdict} verdict")
    elif ctx.verdict is Verdict.UNDETERMINED:
        out.add(Outcome.NEEDS_APPROVAL, "verdict undetermined")
    if ctx.allowlisted_target:
        out.add(Outcome.NEEDS_APPROVAL, f"target is allowlisted ({ctx.allowlisted_target})")
    if ctx.asset_tier <= policy.crown_jewel_tier:
        out.add(Outcome.NEEDS_APPROVAL, f"crown-jewel asset (tier {ctx.asset_tier}) involved")
    # Executives and privileged identities always need a person (DESIGN.md); the policy can add roles.
    sensitive = sorted(str(r) for r in ctx.identity_roles if r in _ALWAYS_APPROVE_ROLES or r in policy.approval_roles)
    if sensitive:
        out.add(Outcome.NEEDS_APPROVAL, f"{', '.join(sensitive)} identity involved")
    if ctx.privileged_identity:
        out.add(Outcome.NEEDS_APPROVAL, "privileged identity involved")
    _check_autonomy(ctx, policy, out)

    rule = policy.tier_rule(tier)
    if tier is Tier.CONTAIN_HARD:
        rule = rule.model_copy(update={
            "min_independent_evidence": max(rule.min_independent_evidence, _HARD_MIN_EVIDENCE),
            "max_autonomous_asset_tier": max(rule.max_autonomous_asset_tier, _HARD_MIN_ASSET_TIER),
        })
    # Written as "not >=" so a NaN confidence never meets a bar.
    if not ctx.confidence >= rule.min_confidence:
        out.add(Outcome.NEEDS_APPROVAL,
                f"confidence {ctx.confidence:.2f} below {rule.min_confidence:.2f} for {tier}")
    else:
        out.add(Outcome.ALLOW, f"confidence {ctx.confidence:.2f} meets {rule.min_confidence:.2f} for {tier}")
    if ctx.independent_evidence < rule.min_independent_evidence:
        out.add(Outcome.NEEDS_APPROVAL,
                f"{ctx.independent_evidence} independent evidence source(s), {tier} needs "
                f"{rule.min_independent_evidence}")
    if ctx.asset_tier < rule.max_autonomous_asset_tier:
        out.add(Outcome.NEEDS_APPROVAL,
                f"asset tier {ctx.asset_tier} is too critical for autonomous {tier} "
                f"(tier {rule.max_autonomous_asset_tier} or lower criticality needed)")


def _check_block(action: ProposedAction, ctx: GuardContext, policy: Policy, out: _Verdicts) -> None:
    target = action.target
    if target is not None and target.kind is EntityKind.IP:
        reason = _never_block_reason(target.value, policy)
        if reason:
            out.add(Outcome.DENY, f"never block: {reason}")
    ttl = action.params.get("ttl_seconds")
    if not isinstance(ttl, int) or isinstance(ttl, bool) or ttl <= 0:
        action.params["ttl_seconds"] = policy.block.default_ttl_s
        out.add(Outcome.ALLOW, f"no valid TTL given: defaulted to {policy.block.default_ttl_s}s (no permanent blocks)")
    elif ttl > policy.block.max_ttl_s:
        action.params["ttl_seconds"] = policy.block.max_ttl_s
        out.add(Outcome.ALLOW, f"TTL {ttl}s capped to {policy.block.max_ttl_s}s")
    if ctx.recent_blocks >= policy.block.max_blocks:
        out.add(Outcome.NEEDS_APPROVAL,
                f"block rate limit: {ctx.recent_blocks} blocks in {policy.block.rate_window_s}s "
                f"(max {policy.block.max_blocks})")
