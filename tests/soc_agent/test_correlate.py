"""Correlation: strong indicators join across rules, weak entities only within a rule."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from soc_agent.correlate import Correlator
from soc_agent.types import Alert, Entity, EntityKind, Severity

T0 = datetime(2026, 11, 22, 8, 0, tzinfo=timezone.utc)


def _alert(alert_id: str, rule: str, *entities: tuple[str, str], minutes: float = 0) -> Alert:
    return Alert(id=alert_id, source="test", kind="alert", rule_id=rule, title=rule, severity=Severity.MEDIUM,
                 timestamp=T0 + timedelta(minutes=minutes),
                 entities=[Entity(kind=EntityKind(kind), value=value) for kind, value in entities])


def test_a_weak_entity_joins_its_rules_case_even_after_another_case_took_it_up():
    correlator = Correlator(timedelta(hours=1))
    admin = correlator.attach(_alert("a1", "admin_tool_execution", ("user", "u1"), ("host", "wks-1")))
    # The same user in another rule's case (a weak entity does not join across rules)...
    travel = correlator.attach(_alert("a2", "impossible_travel", ("user", "u1"), ("ip", "198.51.100.9"), minutes=1))
    assert travel.new_case and travel.case_id != admin.case_id
    # ...must not hide the user's open admin case from the next admin alert of that user (naming no host:
    # a weak entity joins across machines not at all, see test_a_weak_entity_does_not_join_another_hosts_case).
    follow = correlator.attach(_alert("a3", "admin_tool_execution", ("user", "u1"), minutes=2))
    assert follow.case_id == admin.case_id and not follow.new_case


def test_a_strong_indicator_joins_across_rules_and_a_weak_one_does_not():
    correlator = Correlator(timedelta(hours=1))
    first = correlator.attach(_alert("b1", "connection_to_known_bad_ip", ("host", "wks-2"), ("ip", "203.0.113.7")))
    exfil = correlator.attach(_alert("b2", "exfil_unusual_destination", ("host", "wks-3"), ("ip", "203.0.113.7"),
                                     minutes=1))
    assert exfil.case_id == first.case_id and exfil.material  # a new detection on the same external address
    scan = correlator.attach(_alert("b3", "port_scan", ("host", "wks-2"), ("ip", "10.0.0.5"), minutes=2))
    assert scan.new_case  # same laptop, other rule, internal address: another case


def _on(alert_id: str, rule: str, *entities: tuple[str, str, str], minutes: float = 0) -> Alert:
    return Alert(id=alert_id, source="test", kind="alert", rule_id=rule, title=rule, severity=Severity.CRITICAL,
                 timestamp=T0 + timedelta(minutes=minutes),
                 entities=[Entity(kind=EntityKind(kind), value=value, role=role) for kind, value, role in entities])


def test_a_weak_entity_does_not_join_another_hosts_case():
    correlator = Correlator(timedelta(hours=1))
    lockbit = correlator.attach(_on("r1", "malware_detected", ("host", "wks-a", "dst"), ("user", "sybil", "actor"),
                                    ("file_hash", "1" * 64, "file")))
    # Another host, another file, the same user: a different machine, nothing strong shared.
    cobalt = correlator.attach(_on("r2", "malware_detected", ("host", "wks-b", "dst"), ("user", "sybil", "actor"),
                                   ("file_hash", "2" * 64, "file"), minutes=1))
    assert cobalt.new_case and cobalt.case_id != lockbit.case_id
    # The same host again, a new file: a same-rule follow-up, joined through the host.
    again = correlator.attach(_on("r3", "malware_detected", ("host", "wks-a", "dst"), ("user", "sybil", "actor"),
                                  ("file_hash", "3" * 64, "file"), minutes=2))
    assert again.case_id == lockbit.case_id and "joined through host:wks-a" in again.why


def test_a_shared_file_hash_joins_another_host_says_through_which_and_is_material():
    correlator = Correlator(timedelta(hours=1))
    first = correlator.attach(_on("h1", "malware_detected", ("host", "wks-a", "dst"), ("user", "u1", "actor"),
                                  ("file_hash", "f" * 64, "file")))
    second = correlator.attach(_on("h2", "malware_detected", ("host", "wks-b", "dst"), ("user", "u2", "actor"),
                                   ("file_hash", "f" * 64, "file"), minutes=1))
    assert second.case_id == first.case_id and second.material
    assert f"joined through file_hash:{'f' * 64}" in second.why and "new host host:wks-b" in second.why
    # The same host and file again: a follow-up that changes nothing, still saying how it joined.
    third = correlator.attach(_on("h3", "malware_detected", ("host", "wks-b", "dst"), ("file_hash", "f" * 64, "file"),
                                  minutes=2))
    assert third.case_id == first.case_id and not third.material
    # Entities are tried in the alert's own order (as the fleet routes them): the host comes first here.
    assert third.why == ["follow-up, nothing material changed", "joined through host:wks-b"]


def test_a_new_process_in_a_case_is_material_and_a_restored_case_keeps_its_machines():
    correlator = Correlator(timedelta(hours=1))
    correlator.restore("case-p", {"suspicious_powershell"}, {"host:kiosk01", "process:powershell.exe:3820"},
                       Severity.HIGH, T0, runs=1)
    follow = correlator.attach(_on("p2", "suspicious_powershell", ("host", "kiosk01", "dst"),
                                   ("process", "powershell.exe:9092", "process"), minutes=1))
    assert follow.case_id == "case-p" and follow.material and "new process process:powershell.exe:9092" in follow.why
    elsewhere = correlator.attach(_on("p3", "suspicious_powershell", ("host", "kiosk02", "dst"),
                                      ("process", "powershell.exe:9092", "process"), minutes=2))
    assert elsewhere.new_case, "a weak entity (the process) does not join another machine's case"


def test_a_case_past_the_window_is_not_joined():
    correlator = Correlator(timedelta(minutes=30))
    old = correlator.attach(_alert("c1", "admin_tool_execution", ("user", "u2"), ("host", "wks-4")))
    late = correlator.attach(_alert("c2", "admin_tool_execution", ("user", "u2"), ("host", "wks-4"), minutes=45))
    assert late.new_case and late.case_id != old.case_id


def test_a_restored_case_joins_on_its_weak_entities_for_each_of_its_rules():
    correlator = Correlator(timedelta(hours=1))
    correlator.restore("case-r", {"admin_tool_execution"}, {"user:u3", "host:wks-5"}, Severity.MEDIUM,
                       T0, runs=1)
    again = correlator.attach(_alert("d1", "admin_tool_execution", ("user", "u3"), minutes=5))
    assert again.case_id == "case-r"
    other_rule = correlator.attach(_alert("d2", "impossible_travel", ("user", "u3"), minutes=6))
    assert other_rule.new_case


def test_restored_cases_keep_which_rule_came_with_which_entity():
    # Case X: exfil from wks-0360. Case Y, newer: a known-bad connection from wks-0360 and an exfil
    # from wks-0743. After a restore, the next exfil from wks-0360 still belongs to X, as it would
    # have without the restart: Y never had an exfil from wks-0360.
    correlator = Correlator(timedelta(hours=1))
    correlator.restore("case-x", {"exfil"}, {"host:wks-0360", "ip:198.51.100.1"}, Severity.HIGH, T0, 1,
                       {("exfil", "host:wks-0360"), ("exfil", "ip:198.51.100.1")})
    correlator.restore("case-y", {"known_bad", "exfil"}, {"host:wks-0360", "host:wks-0743", "ip:198.51.100.2"},
                       Severity.HIGH, T0 + timedelta(minutes=20), 1,
                       {("known_bad", "host:wks-0360"), ("known_bad", "ip:198.51.100.2"),
                        ("exfil", "host:wks-0743"), ("exfil", "ip:198.51.100.2")})
    later = correlator.attach(_alert("e1", "exfil", ("host", "wks-0360"), ("ip", "198.51.100.3"), minutes=40))
    assert later.case_id == "case-x"


def test_the_newest_restored_case_keeps_a_shared_key_whatever_the_restore_order():
    for order in (("old", "new"), ("new", "old")):
        correlator = Correlator(timedelta(hours=1))
        for name in order:
            seen = T0 + timedelta(minutes=30 if name == "new" else 0)
            correlator.restore(f"case-{name}", {"admin"}, {"user:u9"}, Severity.LOW, seen, 1, {("admin", "user:u9")})
        joined = correlator.attach(_alert("f1", "admin", ("user", "u9"), minutes=45))
        assert joined.case_id == "case-new", order


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_cases_no_alert_joined_for_a_window_are_forgotten_and_their_keys_released():
    clock = _Clock()
    correlator = Correlator(timedelta(minutes=30), clock=clock)
    idle = correlator.attach(_alert("d1", "connection_to_known_bad_ip", ("host", "wks-5"), ("ip", "203.0.113.8")))
    clock.now += 20 * 60
    busy = correlator.attach(_alert("d2", "admin_tool_execution", ("user", "u3"), ("host", "wks-6")))
    clock.now += 11 * 60  # idle: 31 minutes untouched; busy: 11
    assert correlator.forget_idle() == [idle.case_id]
    assert list(correlator.cases) == [busy.case_id]
    # Nothing of the forgotten case is left in any index: its address opens a new case, as after a restart.
    again = correlator.attach(_alert("d3", "connection_to_known_bad_ip", ("host", "wks-5"), ("ip", "203.0.113.8"),
                                     minutes=1))
    assert again.new_case and again.case_id != idle.case_id
    assert correlator.attach(_alert("d4", "admin_tool_execution", ("user", "u3"), ("host", "wks-6"),
                                    minutes=2)).case_id == busy.case_id


def test_forgetting_a_case_leaves_a_key_a_newer_case_took_over():
    clock = _Clock()
    correlator = Correlator(timedelta(minutes=30), clock=clock)
    old = correlator.attach(_alert("e1", "malware_detected", ("host", "wks-7"), ("file_hash", "ab" * 32)))
    clock.now += 40 * 60
    # 40 minutes of event time later the old case is past its window: the same hash opens a newer case.
    newer = correlator.attach(_alert("e2", "malware_detected", ("host", "wks-8"), ("file_hash", "ab" * 32),
                                     minutes=40))
    assert newer.new_case
    assert correlator.forget_idle() == [old.case_id]
    joined = correlator.attach(_alert("e3", "malware_detected", ("host", "wks-9"), ("file_hash", "ab" * 32),
                                      minutes=41))
    assert joined.case_id == newer.case_id
