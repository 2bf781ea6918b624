"""Everything the graph's nodes need, passed as LangGraph runtime context.

Nodes get their dependencies from here rather than from globals, so tests
build a ``Services`` with a temporary store and a scripted reasoner.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from connectors.base import Enricher
from soc_agent.audit import AuditLog
from soc_agent.config import Settings
from soc_agent.enrich import EnrichmentCache, LocalKnowledge
from soc_agent.learning.similar import SimilarDispositions
from soc_agent.notes import NoteFiles
from soc_agent.parsed_alerts import ParsedAlerts
from soc_agent.playbooks import PlaybookSet
from soc_agent.policy import Policy
from soc_agent.reasoner import Reasoner
from soc_agent.responders import ActionExecutor
from soc_agent.scoring import RuleBook
from soc_agent.store import Store
from soc_agent.types import Assessment, Case, Evidence, RunMode
from soc_agent.vendor_evidence import EvidenceBook


class EvidenceSource(Protocol):
    """Adds evidence about a whole case (e.g. learned priors from analysts' dispositions)."""

    name: str

    def evidence(self, case: Case) -> list[Evidence]:
        """Evidence items for ``case``; weights signed like every other item."""
        ...


Calibrator = Callable[[Assessment], Assessment]
"""Maps a reasoner's raw confidence to a calibrated one (same verdict)."""


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
    evidence_sources: list[EvidenceSource] = field(default_factory=list)
    """Case-level evidence added by the assess node (learned priors...)."""
    calibrator: Calibrator | None = None
    """Applied to every assessment the reason node settles on."""
    similar: SimilarDispositions | None = None
    """The site's past dispositions by rule and entity, for the notes and the LLM's examples; None: none yet."""
    vendor_evidence: EvidenceBook | None = None
    """Generic weights for vendor-native evidence (``playbooks/evidence.yml``); None weighs nothing."""
    parsed_alerts: ParsedAlerts = field(default_factory=ParsedAlerts)
    """Stored alerts already parsed, for the correlate node's re-reads of a case."""
    note_files: NoteFiles = field(init=False)
    """The notes' markdown files, written after each commit of the store."""

    def __post_init__(self) -> None:
        self.note_files = NoteFiles(self.settings.notes_dir)
        self.store.after_commit(self.note_files.write)

    @property
    def mode(self) -> RunMode:
        """The effective run mode: the settings override the policy file."""
        return self.settings.mode or self.policy.mode
