"""The composition root: the one place that turns settings into the services the graph and the CLI use.

``build_services`` assembles everything a triage process needs (store, audit with
signed checkpoints, knowledge, enrichers, playbooks, policy, reasoner, executor,
learned evidence); ``open_executor`` gives the commands that only act on effects
(``actions rollback``, ``blocks list``'s expiry) the same executor, with the
responders the connectors file grants, instead of a store-only stand-in.
"""

from __future__ import annotations

import os

from connectors.loader import configured_connectors
from connectors.registry import formats
from soc_agent.audit import AuditLog
from soc_agent.audit_checkpoints import AuditCheckpoints
from soc_agent.config import Settings
from soc_agent.enrich import LocalKnowledge, local_enrichers
from soc_agent.learning import load_learning
from soc_agent.learning.similar import SimilarDispositions
from soc_agent.playbooks import PlaybookSet, load_playbooks
from soc_agent.policy import load_policy
from soc_agent.reasoner import DeterministicReasoner, Reasoner
from soc_agent.responders import ActionExecutor, LocalResponder
from soc_agent.responders.local import CASE_CAPABILITIES
from soc_agent.scoring import RuleBook
from soc_agent.services import Services
from soc_agent.store import Store
import soc_agent.store.schema  # noqa: F401  (every wing's tables, for the store to create)
from soc_agent.vendor_evidence import EvidenceBook

__all__ = ["build_services", "make_reasoner", "open_audit", "open_executor"]


def make_reasoner(kind: str) -> Reasoner:
    """The reasoner a setting names: ``deterministic`` or ``llm`` (endpoint from SOC_AGENT_LLM_*)."""
    if kind == "llm":
        from soc_agent.llm import LLMReasoner, LLMSettings  # deferred: the model client (openai): --reasoner llm

        return LLMReasoner(LLMSettings.from_env())
    return DeterministicReasoner()


def open_audit(settings: Settings, store: Store) -> AuditLog:
    """The audit log on ``store``, with its HMAC key and signed checkpoints beside the workdir."""
    # Signed checkpoints beside the workdir, for Postgres fleets too (their store is not a file to sit beside).
    return AuditLog(store.engine, settings.audit_key, checkpoints=AuditCheckpoints.for_settings(settings))


def _executor(store: Store, audit: AuditLog, remote_responders: list) -> ActionExecutor:
    # Remote responders first: the executor uses the first responder holding a capability,
    # so the local one only covers what no configured connector was granted.
    # With a connectors file, an action no connector was granted is denied rather than simulated
    # by the store-only responder (which then keeps just the case's own capabilities).
    return ActionExecutor(store, audit, [*remote_responders, LocalResponder(
        store, CASE_CAPABILITIES if os.environ.get("SOC_AGENT_CONNECTORS") else None)])


def open_executor(settings: Settings, store: Store) -> ActionExecutor:
    """The executor a triage process would use, for commands that roll back or expire effects."""
    _, remote_responders = configured_connectors()
    return _executor(store, open_audit(settings, store), remote_responders)


def build_services(settings: Settings, reasoner: Reasoner | None = None) -> Services:
    """Everything the graph needs, from the settings' files and store.

    The alert formats are built here too, so a bad generic mapping file
    (``SOC_AGENT_GENERIC_MAPPING``) stops start-up with its file:key error
    instead of dead-lettering every alert once the first one arrives.
    """
    formats()
    store = Store(settings.db_url)
    audit = open_audit(settings, store)
    knowledge = LocalKnowledge.from_dir(settings.data_dir)
    # Remote connectors only when $SOC_AGENT_CONNECTORS names a file; otherwise the local defaults alone.
    remote_enrichers, remote_responders = configured_connectors()
    # Priors and calibration learned from analysts' dispositions; ([], None) until something was learned.
    evidence_sources, calibrator = load_learning(settings, store)
    with store.reader() as session:
        similar = SimilarDispositions.load(session)
    return Services(
        settings=settings, store=store, audit=audit, knowledge=knowledge,
        enrichers=local_enrichers(knowledge) + remote_enrichers,
        playbooks=PlaybookSet(load_playbooks(settings.playbooks_dir)),
        policy=load_policy(settings.playbooks_dir / "policy.yml", settings.autonomy_file),
        rulebook=RuleBook.from_file(settings.playbooks_dir / "detectors.yml"),
        vendor_evidence=EvidenceBook.from_file(settings.playbooks_dir / "evidence.yml"),
        reasoner=reasoner or make_reasoner(settings.reasoner),
        executor=_executor(store, audit, remote_responders),
        evidence_sources=evidence_sources, calibrator=calibrator, similar=similar if similar.size else None,
    )
