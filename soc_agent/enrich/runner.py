"""Run enrichers over a case's entities, each under a timeout, with a cache.

A failing or slow enricher produces a ``degraded`` evidence item naming it
and the reason, so the notes say what was not checked; the run goes on.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field

from connectors.base import Enricher
from soc_agent.enrich.local import LocalKnowledge
from soc_agent.types import Entity, EntityKind, Evidence
from soc_agent.wording import a_or_an


@dataclass
class EnrichmentResult:
    """Evidence gathered for a case and the enrichers that failed."""

    evidence: list[Evidence] = field(default_factory=list)
    degraded: list[str] = field(default_factory=list)


class _Intel:
    name = "threat_intel"
    in_memory = True
    kinds = frozenset({EntityKind.IP, EntityKind.DOMAIN, EntityKind.URL, EntityKind.FILE_HASH, EntityKind.EMAIL})

    def __init__(self, knowledge: LocalKnowledge) -> None:
        self.knowledge = knowledge

    def lookup(self, entity: Entity, rules: frozenset[str]) -> list[Evidence]:
        hit = self.knowledge.indicator(entity)
        if hit is not None:
            return [Evidence(
                id=f"intel:{entity.key}", kind="intel", source=f"{self.name}/{hit.source}",
                summary=f"{entity.key} is on the {hit.source} watchlist (confidence {hit.confidence:.2f})",
                weight=3.0 * hit.confidence, data={"indicator": hit.indicator, "confidence": hit.confidence},
            )]
        stale = self.knowledge.expired_indicator(entity)
        if stale is not None:
            return [Evidence(
                id=f"intel-expired:{entity.key}", kind="intel_expired", source=f"{self.name}/{stale.source}",
                summary=f"{entity.key} was on the {stale.source} watchlist until {stale.expires:%Y-%m-%d}; expired",
                weight=-0.5, data={"indicator": stale.indicator},
            )]
        return []


class _Assets:
    name = "asset_inventory"
    in_memory = True
    kinds = frozenset({EntityKind.HOST, EntityKind.IP})

    def __init__(self, knowledge: LocalKnowledge) -> None:
        self.knowledge = knowledge

    def lookup(self, entity: Entity, rules: frozenset[str]) -> list[Evidence]:
        asset = self.knowledge.asset(entity)
        if asset is None:
            return []
        return [Evidence(
            id=f"asset:{entity.key}", kind="asset", source=self.name,
            summary=f"{entity.key} is {asset.host} (tier {asset.criticality_tier}, {asset.environment}, "
            f"owner {asset.owner})",
            data=asset.model_dump(),
        )]


class _Identities:
    name = "identity_directory"
    in_memory = True
    kinds = frozenset({EntityKind.USER})

    def __init__(self, knowledge: LocalKnowledge) -> None:
        self.knowledge = knowledge

    def lookup(self, entity: Entity, rules: frozenset[str]) -> list[Evidence]:
        ident = self.knowledge.identity(entity)
        if ident is None:
            return []
        privileged = "privileged " if ident.privileged else ""
        return [Evidence(
            id=f"identity:{entity.key}", kind="identity", source=self.name,
            summary=f"{entity.key} is {a_or_an(privileged + str(ident.role))} ({ident.department or 'no department'})",
            data=ident.model_dump(mode="json"),
        )]


class _Allowlist:
    name = "allowlist"
    in_memory = True
    kinds = frozenset(EntityKind)

    def __init__(self, knowledge: LocalKnowledge) -> None:
        self.knowledge = knowledge

    def lookup(self, entity: Entity, rules: frozenset[str]) -> list[Evidence]:
        entry = self.knowledge.allowlisted(entity, set(rules))
        if entry is None:
            return []
        return [Evidence(
            id=f"allowlist:{entity.key}", kind="allowlist", source=self.name,
            summary=f"{entity.key} is allowlisted: {entry.reason}", weight=-4.0,
            data={"reason": entry.reason, "rules": entry.rules},
        )]


def local_enrichers(knowledge: LocalKnowledge) -> list[Enricher]:
    """The enrichers over the local data files."""
    return [_Intel(knowledge), _Assets(knowledge), _Identities(knowledge), _Allowlist(knowledge)]


# One small pool for all enrichers: lookups are I/O-shaped for remote ones.
_POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="enrich")
_CACHE_TTL_S = 300.0


class EnrichmentCache:
    """(enricher, entity, rule scope) -> evidence, for a few minutes."""

    def __init__(self, ttl_s: float = _CACHE_TTL_S, max_entries: int = 50_000) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._data: dict[tuple, tuple[float, list[Evidence]]] = {}

    def get(self, key: tuple) -> list[Evidence] | None:
        hit = self._data.get(key)
        if hit is None or time.monotonic() - hit[0] > self.ttl_s:
            return None
        return hit[1]

    def put(self, key: tuple, value: list[Evidence]) -> None:
        if len(self._data) >= self.max_entries:
            self._data.clear()  # bounded memory beats a perfect LRU here
        self._data[key] = (time.monotonic(), value)


def enrich_case(
    enrichers: Iterable[Enricher],
    entities: Iterable[Entity],
    rules: frozenset[str],
    timeout_s: float,
    cache: EnrichmentCache | None = None,
) -> EnrichmentResult:
    """Run every enricher over every entity it handles, each call under ``timeout_s``."""
    result = EnrichmentResult()
    seen: set[str] = set()
    entities = list(entities)
    for enricher in enrichers:
        for entity in entities:
            if entity.kind not in enricher.kinds:
                continue
            key = (enricher.name, entity.key, rules)
            cached = cache.get(key) if cache is not None else None
            if cached is None:
                try:
                    if getattr(enricher, "in_memory", False):
                        # Dictionary lookups cannot hang: a thread hop would cost more than the lookup.
                        cached = enricher.lookup(entity, rules)
                    else:
                        cached = _POOL.submit(enricher.lookup, entity, rules).result(timeout=timeout_s)
                except FutureTimeout:
                    result.degraded.append(f"{enricher.name}: timed out after {timeout_s:.2f}s on {entity.key}")
                    continue
                except Exception as exc:  # any enricher bug degrades evidence, never the run
                    result.degraded.append(f"{enricher.name}: {type(exc).__name__} on {entity.key}")
                    continue
                # Enrichment is about its entity: benign facts of one entity never speak for another's alert.
                cached = [item if item.entity else item.model_copy(update={"entity": entity.key})
                          for item in cached]
                if cache is not None:
                    cache.put(key, cached)
            for item in cached:
                if item.id not in seen:
                    seen.add(item.id)
                    result.evidence.append(item)
    for index, reason in enumerate(result.degraded):
        result.evidence.append(Evidence(
            id=f"degraded:{index}", kind="degraded", source=reason.split(":", 1)[0],
            summary=f"enrichment incomplete: {reason}",
        ))
    return result
