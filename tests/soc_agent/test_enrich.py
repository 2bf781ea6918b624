"""Enrichment degrades, never fails: slow and broken enrichers are noted and the run goes on."""

from __future__ import annotations

import json
import time

from soc_agent.enrich import EnrichmentCache, LocalKnowledge, enrich_case, local_enrichers
from soc_agent.store import NoteRow
from soc_agent.types import Entity, EntityKind
from tests.conftest import make_alert

IP = Entity(kind=EntityKind.IP, value="203.0.113.45")


class _Slow:
    name, kinds = "slow_cmdb", frozenset({EntityKind.IP})

    def lookup(self, entity, rules):
        time.sleep(1.0)
        return []


class _Broken:
    name, kinds = "broken_intel", frozenset({EntityKind.IP})
    in_memory = True

    def lookup(self, entity, rules):
        raise KeyError("boom")


def test_a_slow_enricher_times_out_and_is_noted():
    started = time.perf_counter()
    result = enrich_case([_Slow()], [IP], frozenset(), timeout_s=0.1)
    assert time.perf_counter() - started < 0.9
    assert result.degraded == ["slow_cmdb: timed out after 0.10s on ip:203.0.113.45"]
    assert [e.kind for e in result.evidence] == ["degraded"]


def test_a_broken_enricher_is_noted_and_the_others_still_answer(settings):
    knowledge = LocalKnowledge.from_dir(settings.data_dir)
    result = enrich_case([_Broken(), *local_enrichers(knowledge)], [IP], frozenset(), timeout_s=0.5)
    assert result.degraded == ["broken_intel: KeyError on ip:203.0.113.45"]
    assert any(e.kind == "intel" for e in result.evidence), "the local watchlist still matched"


def test_expired_intel_does_not_count_as_a_hit(settings):
    knowledge = LocalKnowledge.from_dir(settings.data_dir)
    result = enrich_case(local_enrichers(knowledge), [Entity(kind=EntityKind.IP, value="192.0.2.66")],
                         frozenset(), timeout_s=0.5)
    assert [e.kind for e in result.evidence] == ["intel_expired"]


def test_identity_evidence_has_the_article_its_role_needs(settings):
    knowledge = LocalKnowledge.from_dir(settings.data_dir)
    users = [Entity(kind=EntityKind.USER, value=v) for v in ("ceo.hart", "alice", "ctr.victor", "admin.bob")]
    result = enrich_case(local_enrichers(knowledge), users, frozenset(), timeout_s=0.5)
    assert sorted(e.summary for e in result.evidence if e.kind == "identity") == [
        "user:admin.bob is a privileged employee (it)", "user:alice is an employee (finance)",
        "user:ceo.hart is an executive (executive)", "user:ctr.victor is a contractor (engineering)"]


def test_the_cache_serves_repeat_lookups():
    calls = []

    class Counting:
        name, kinds, in_memory = "counting", frozenset({EntityKind.IP}), True

        def lookup(self, entity, rules):
            calls.append(entity.key)
            return []

    cache = EnrichmentCache()
    for _ in range(3):
        enrich_case([Counting()], [IP], frozenset(), timeout_s=0.5, cache=cache)
    assert calls == ["ip:203.0.113.45"]


def test_a_run_with_a_failing_enricher_still_decides_and_says_what_was_not_checked(pipeline):
    pipeline.services.enrichers.append(_Slow())
    pipeline.services.settings.enricher_timeout_s = 0.05
    line = make_alert("connection_to_known_bad_ip", [("host", "kiosk01.corp.example", "src"),
                                                     ("ip", "198.51.100.140", "dst")], alert_id="kb-1")
    result = pipeline.process_line(line)[0]
    assert result.status == "decided" and result.verdict == "true_positive"
    notes = json.loads(pipeline.store.session.get(NoteRow, result.case_id).notes_json)
    assert any(q.startswith("Not checked: slow_cmdb") for q in notes["open_questions"])
    assert "enrichment was incomplete" in notes["reasoning"]
