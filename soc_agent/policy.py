"""The guard's policy: ordered data in ``playbooks/policy.yml``, validated here.

Nothing in the policy can make the guard more permissive than DESIGN.md's
tier table: the checks are in code, the numbers and lists are data.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Literal

import cel
from pydantic import BaseModel, ConfigDict, Field, field_validator

from soc_agent.config_file import read_yaml
from soc_agent.types import IdentityRole, Outcome, RunMode, Tier


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TierRule(_Strict):
    """What a tier needs before it may run without a person."""

    min_confidence: float = Field(default=0.0, ge=0.0, le=1.0)
    min_independent_evidence: int = Field(
        default=1, ge=0, description="distinct evidence sources that must back a malicious verdict"
    )
    max_autonomous_asset_tier: int = Field(
        default=1, ge=0, le=4,
        description="assets more critical than this (lower tier) need approval; 1 = only tier 0 needs it",
    )


class BlockPolicy(_Strict):
    """Block-specific limits: TTLs and the rate limit."""

    default_ttl_s: int = Field(default=3600, gt=0)
    max_ttl_s: int = Field(default=86400, gt=0)
    max_blocks: int = Field(default=20, ge=0, description="blocks allowed per rate window before approval")
    rate_window_s: int = Field(default=60, gt=0)
    never_block_private: bool = Field(
        default=True, description="private, loopback, link-local, multicast, reserved, unspecified"
    )
    own_ranges: list[str] = Field(default_factory=list, description="our own address space: never blocked")
    allow_blocking: list[str] = Field(
        default_factory=list, description="ranges that may be blocked despite the rules above"
    )

    @field_validator("own_ranges", "allow_blocking")
    @classmethod
    def _cidrs(cls, ranges: list[str]) -> list[str]:
        for cidr in ranges:
            ipaddress.ip_network(cidr, strict=False)
        return ranges


class PolicyRule(_Strict):
    """An extra ordered rule: a CEL condition over the guard context and the outcome it forces."""

    name: str
    when: str
    outcome: Outcome
    reason: str

    @field_validator("when")
    @classmethod
    def _compiles(cls, source: str) -> str:
        cel.compile(source)
        return source


class DismissPolicy(_Strict):
    """When the agent may close a case on its own."""

    min_confidence: float = Field(default=0.9, ge=0.5, le=1.0,
                                  description="a non-malicious verdict below this waits for a person")


class Policy(_Strict):
    """The guard's whole policy."""

    mode: RunMode = RunMode.SHADOW
    kill_switch: bool = Field(default=False, description="when set, nothing above observe runs")
    granted_capabilities: list[str] = Field(
        default_factory=list, description="capabilities the configured responders are granted"
    )
    tiers: dict[Tier, TierRule] = Field(default_factory=dict)
    crown_jewel_tier: int = Field(default=0, ge=0, le=3, description="assets at or below this tier are crown jewels")
    approval_roles: list[IdentityRole] = Field(
        default_factory=list,
        description="roles that need approval in addition to executives (executives and privileged "
        "identities always need it, whatever this says)",
    )
    block: BlockPolicy = Field(default_factory=BlockPolicy)
    dismiss: DismissPolicy = Field(default_factory=DismissPolicy)
    rules: list[PolicyRule] = Field(default_factory=list)
    autonomy: dict[str, Literal["autonomous", "approval"]] | None = Field(
        default=None,
        description="earned autonomy per incident class (``autonomy.yml`` beside the policy, reviewed from "
        "the shadow runner's suggestion); a class not autonomous needs approval above observe. "
        "None when there is no such file: the install is supervised and everything above observe needs a person",
    )

    def tier_rule(self, tier: Tier) -> TierRule:
        """The tier's rule, or a strict default for a tier the file leaves out."""
        return self.tiers.get(tier) or TierRule(min_confidence=1.0, min_independent_evidence=2)


AUTONOMY_FILE = "autonomy.yml"
"""Earned autonomy per incident class, beside ``policy.yml`` (see ``soc_agent.runners.shadow``)."""


def load_policy(path: Path, autonomy_path: Path | None = None) -> Policy:
    """Load and validate ``policy.yml`` and, when present, the autonomy file (default: ``autonomy.yml`` beside it).

    Problems are :class:`~soc_agent.config_file.ConfigError` naming ``file:line``. Without an autonomy file
    ``Policy.autonomy`` is None: the install is supervised.
    """
    doc = read_yaml(path)
    policy = doc.validate(Policy, data=doc.mapping())
    autonomy_path = autonomy_path or path.parent / AUTONOMY_FILE
    if autonomy_path.exists():
        policy = policy.model_copy(update={"autonomy": read_autonomy(autonomy_path)})
    return policy


def read_autonomy(path: Path | None) -> dict[str, str]:
    """Autonomy per class (``autonomous`` | ``approval``) from an autonomy file; {} when absent.

    Anything but an explicit ``autonomous`` is read as ``approval``: a typo never grants autonomy. A file that is
    not YAML or not a mapping is a :class:`~soc_agent.config_file.ConfigError` naming ``file:line``.
    """
    if path is None or not path.exists():
        return {}
    doc = read_yaml(path)
    classes = doc.mapping().get("autonomy") or {}
    if not isinstance(classes, dict):
        raise doc.fail(("autonomy",), "expected a mapping of incident class to mode")
    out = {}
    for name, body in classes.items():
        mode = body.get("mode") if isinstance(body, dict) else body
        out[str(name)] = "autonomous" if mode == "autonomous" else "approval"
    return out
