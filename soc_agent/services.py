"""Everything the graph's nodes need, passed as LangGraph runtime context.

Nodes get their dependencies from here rather than from globals, so tests
build a ``Services`` with a temporary store and a scripted reasoner.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import datetime

from soc_agent.audit import AuditLog
from soc_agent.config import Settings
from soc_agent.enrich import Enricher, EnrichmentCache, LocalKnowledge
from soc_agent.playbooks import PlaybookSet
from soc_agent.policy import Policy
from soc_agent.reasoner import Reasoner
from soc_agent.responders import ActionExecutor
from soc_agent.scoring import RuleBook
from soc_agent.store import Store
from soc_agent.types import RunMode


@dataclass
class Services:
    """The pipeline's collaborators, shared by every node."""

    settings: Settings
    store: Store
    audit: AuditLog
    knowledge: LocalKnowledge
    enrichers: list[Enricher]
    playbooks: PlaybookSet
    policy: Policy
    rulebook: RuleBook
    reasoner: Reasoner
    executor: ActionExecutor
    cache: EnrichmentCache = field(default_factory=EnrichmentCache)
    block_times: deque[datetime] = field(default_factory=deque)
    """When recent blocks were executed, for the guard's rate limit."""

    @property
    def mode(self) -> RunMode:
        """The effective run mode: the settings override the policy file."""
        return self.settings.mode or self.policy.mode
