"""Playbooks: the shipped ones load and route each incident class; broken ones fail at file:line."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from soc_agent.actions import CATALOG
from soc_agent.playbooks import (
    Playbook,
    PlaybookError,
    PlaybookSet,
    Response,
    TargetSelector,
    load_playbook,
    load_playbooks,
)
from soc_agent.types import Entity, EntityKind

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOKS = ROOT / "playbooks"
BROKEN = Path(__file__).resolve().parent / "broken_playbooks"
MARKER = "# <- load error"


def make_ctx(rules: list[str], verdict: str = "true_positive", confidence: float = 0.95, **extra: Any) -> dict:
    """A plan-node context as documented for playbooks, every key present."""
    entities: dict[str, list[str]] = {kind.value: [] for kind in EntityKind}
    entities.update(extra.pop("entities", {}))
    ctx = {
        "rules": rules,
        "severity": "high",
        "severity_rank": 3,
        "entities": entities,
        "attrs": {},
        "evidence_kinds": ["threshold"],
        "intel_hit": False,
        "allowlisted": False,
        "alert_count": 1,
        "verdict": verdict,
        "confidence": confidence,
        "asset_min_tier": 3,
    }
    ctx.update(extra)
    return ctx


@pytest.fixture(scope="module")
def shipped() -> PlaybookSet:
    return PlaybookSet(load_playbooks(PLAYBOOKS))


# --- the shipped playbooks -----------------------------------------------------


def test_every_shipped_playbook_loads_with_its_source():
    playbooks = load_playbooks(PLAYBOOKS)
    assert playbooks
    for playbook in playbooks:
        assert playbook.source.startswith(str(PLAYBOOKS))
        assert ".yml:" in playbook.source


def test_twelve_incident_classes_besides_default_are_shipped():
    playbooks = load_playbooks(PLAYBOOKS)
    classes = [p.incident_class for p in playbooks if p.name != "default"]
    assert len(classes) >= 12
    assert len(set(classes)) == len(classes)


def test_every_action_a_playbook_names_is_in_the_catalog():
    for playbook in load_playbooks(PLAYBOOKS):
        for response in playbook.responses:
            assert response.action in CATALOG, (playbook.name, response.action)


def test_every_playbook_ends_with_a_catch_all_and_can_close_a_benign_case():
    for playbook in load_playbooks(PLAYBOOKS):
        assert playbook.responses[-1].when.strip() == "true", playbook.name
        assert playbook.responses[-1].action in {"notify_analyst", "open_ticket"}, playbook.name
        assert any(r.action == "close_case" for r in playbook.responses), playbook.name


def test_playbooks_are_sorted_by_priority_then_name():
    playbooks = load_playbooks(PLAYBOOKS)
    assert playbooks == sorted(playbooks, key=lambda p: (p.priority, p.name))
    assert playbooks[-1].name == "default"


def test_policy_and_detector_files_are_not_read_as_playbooks(tmp_path: Path):
    shutil.copy(PLAYBOOKS / "default.yml", tmp_path / "default.yml")
    (tmp_path / "policy.yml").write_text("mode: shadow\n")
    (tmp_path / "detectors.yml").write_text("- threshold: 5\n")
    assert [p.name for p in load_playbooks(tmp_path)] == ["default"]


# (rules, entities, incident class, action for a TP at high confidence, target it resolves to)
CLASS_CASES = [
    (["brute_force_threshold"], [Entity(kind="ip", value="203.0.113.7", role="src")],
     "brute_force", "block_ip", "ip:203.0.113.7"),
    (["password_spray_threshold"], [Entity(kind="ip", value="198.51.100.9", role="src")],
     "password_spray", "block_ip", "ip:198.51.100.9"),
    (["impossible_travel"], [Entity(kind="user", value="alice")],
     "impossible_travel", "revoke_sessions", "user:alice"),
    (["oauth_consent_suspicious"], [Entity(kind="cloud_resource", value="app-1234")],
     "oauth_consent", "revoke_oauth_grant", "cloud_resource:app-1234"),
    (["phishing_reported"],
     [Entity(kind="user", value="bob@example.com", role="recipient"),
      Entity(kind="email", value="evil@phish.example", role="sender")],
     "phishing", "quarantine_email", "email:evil@phish.example"),
    (["malware_detected"], [Entity(kind="host", value="ws-17"), Entity(kind="process", value="evil.exe")],
     "malware", "isolate_host", "host:ws-17"),
    (["shadow_copy_deletion"], [Entity(kind="host", value="fs-02")],
     "ransomware_precursor", "isolate_host", "host:fs-02"),
    (["suspicious_powershell"], [Entity(kind="process", value="powershell.exe")],
     "lolbin", "kill_process", "process:powershell.exe"),
    (["lolbin_execution"], [Entity(kind="process", value="certutil.exe")],
     "lolbin", "kill_process", "process:certutil.exe"),
    (["exfil_unusual_destination"],
     [Entity(kind="ip", value="10.0.0.5", role="src"), Entity(kind="ip", value="192.0.2.44", role="dst")],
     "exfiltration", "block_ip", "ip:192.0.2.44"),
    (["connection_to_known_bad_ip"], [Entity(kind="ip", value="192.0.2.66", role="dst")],
     "known_bad_ip", "block_ip", "ip:192.0.2.66"),
    (["port_scan"], [Entity(kind="ip", value="203.0.113.99", role="src")],
     "vuln_scanner", "block_ip", "ip:203.0.113.99"),
    (["vuln_scan_detected"], [Entity(kind="ip", value="203.0.113.98", role="src")],
     "vuln_scanner", "block_ip", "ip:203.0.113.98"),
    (["admin_tool_execution"], [Entity(kind="host", value="ws-3")],
     "sanctioned_admin", "open_ticket", None),
    (["something_nobody_wrote_a_playbook_for"], [], "unclassified", "open_ticket", None),
]


def _entities_ctx(entities: list[Entity]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for entity in entities:
        out.setdefault(entity.kind.value, []).append(entity.value)
    return out


@pytest.mark.parametrize(("rules", "entities", "incident_class", "action", "target"), CLASS_CASES,
                         ids=[c[2] + ":" + c[0][0] for c in CLASS_CASES])
def test_each_class_routes_a_confident_true_positive_to_its_action(
    shipped: PlaybookSet, rules, entities, incident_class, action, target
):
    ctx = make_ctx(rules, entities=_entities_ctx(entities))
    playbook = shipped.match(ctx)
    assert playbook is not None
    assert playbook.incident_class == incident_class
    response = shipped.choose(playbook, ctx)
    assert response is not None
    assert response.action == action
    resolved = shipped.resolve_target(response, entities)
    assert (resolved.key if resolved else None) == target


@pytest.mark.parametrize(("rules", "entities", "incident_class", "action", "target"), CLASS_CASES,
                         ids=[c[2] + ":" + c[0][0] for c in CLASS_CASES])
def test_each_class_closes_a_benign_positive(shipped: PlaybookSet, rules, entities, incident_class, action, target):
    ctx = make_ctx(rules, verdict="benign_positive", confidence=0.9, entities=_entities_ctx(entities))
    playbook = shipped.match(ctx)
    assert playbook is not None and playbook.incident_class == incident_class
    response = shipped.choose(playbook, ctx)
    assert response is not None and response.action == "close_case"


def test_an_undetermined_case_goes_to_an_analyst(shipped: PlaybookSet):
    ctx = make_ctx(["malware_detected"], verdict="undetermined", confidence=0.4)
    playbook = shipped.match(ctx)
    assert playbook is not None
    assert shipped.choose(playbook, ctx).action == "notify_analyst"


def test_a_less_confident_true_positive_gets_a_ticket_not_containment(shipped: PlaybookSet):
    ctx = make_ctx(["malware_detected"], confidence=0.85)
    playbook = shipped.match(ctx)
    assert shipped.choose(playbook, ctx).action == "open_ticket"


def test_ransomware_precursor_wins_over_malware_when_both_fire(shipped: PlaybookSet):
    ctx = make_ctx(["malware_detected", "shadow_copy_deletion"])
    assert shipped.match(ctx).incident_class == "ransomware_precursor"


def test_lolbin_wins_over_sanctioned_admin_when_both_fire(shipped: PlaybookSet):
    ctx = make_ctx(["admin_tool_execution", "lolbin_execution"])
    assert shipped.match(ctx).incident_class == "lolbin"


def test_menu_lists_every_holding_response_in_order(shipped: PlaybookSet):
    ctx = make_ctx(["exfil_unusual_destination"])
    playbook = shipped.match(ctx)
    assert [r.action for r in shipped.menu(playbook, ctx)] == [
        "block_ip", "block_domain", "open_ticket", "notify_analyst"
    ]


def test_block_ip_responses_carry_a_ttl(shipped: PlaybookSet):
    for playbook in shipped.playbooks:
        for response in playbook.responses:
            if response.action == "block_ip":
                assert response.params["ttl_seconds"] > 0


def test_choose_with_entities_skips_a_response_whose_target_is_absent(shipped: PlaybookSet):
    # A brute force whose source address was not extracted cannot be blocked: ticket it instead.
    ctx = make_ctx(["brute_force_threshold"])
    playbook = shipped.match(ctx)
    entities = [Entity(kind="ip", value="203.0.113.7", role="dst")]
    assert shipped.choose(playbook, ctx).action == "block_ip"
    assert shipped.choose(playbook, ctx, entities).action == "open_ticket"


def test_resolve_target_honours_role_and_kind():
    response = Response(when="true", action="block_ip", target=TargetSelector(kind="ip", role="dst"),
                        params={"ttl_seconds": 60})
    entities = [
        Entity(kind="host", value="ws-1"),
        Entity(kind="ip", value="10.0.0.1", role="src"),
        Entity(kind="ip", value="192.0.2.1", role="dst"),
        Entity(kind="ip", value="192.0.2.2", role="dst"),
    ]
    assert PlaybookSet.resolve_target(response, entities).value == "192.0.2.1"
    assert PlaybookSet.resolve_target(response, entities[:2]) is None
    any_role = response.model_copy(update={"target": TargetSelector(kind="ip")})
    assert PlaybookSet.resolve_target(any_role, entities).value == "10.0.0.1"
    no_target = Response(when="true", action="notify_analyst")
    assert PlaybookSet.resolve_target(no_target, entities) is None


def test_the_target_is_the_new_alerts_entity_and_the_cases_only_when_the_alert_has_none_of_the_kind():
    kill = Response(when="true", action="kill_process", target=TargetSelector(kind="process"))
    case = [Entity(kind="host", value="kiosk01"), Entity(kind="process", value="powershell.exe:3820")]
    new = [Entity(kind="host", value="kiosk01"), Entity(kind="process", value="powershell.exe:9092")]
    assert PlaybookSet.resolve_target(kill, [*case, new[1]], new).value == "powershell.exe:9092"
    # A follow-up naming no process: the case's process is still the one to kill.
    assert PlaybookSet.resolve_target(kill, case, new[:1]).value == "powershell.exe:3820"
    # A role the new alert's entity does not play is no match: the case's sender is the fallback.
    quarantine = Response(when="true", action="quarantine_email", target=TargetSelector(kind="email", role="sender"))
    senders = [Entity(kind="email", value="a@evil.example", role="sender")]
    recipient = [Entity(kind="email", value="ann@corp.example", role="recipient")]
    assert PlaybookSet.resolve_target(quarantine, senders, recipient).value == "a@evil.example"
    # choose/menu resolve the same way: a response whose kind only the case has stays on the menu.
    shipped = PlaybookSet([Playbook(name="p", title="t", incident_class="c", priority=0, when="true",
                                    responses=[kill])])
    assert shipped.choose(shipped.playbooks[0], {}, case, new[:1]) is kill


# --- CEL evaluation never raises -------------------------------------------------


def _attrs_playbook() -> Playbook:
    return Playbook(
        name="needs_attrs", title="t", incident_class="x", priority=0,
        when="attrs.bytes_out > 1000",  # no has(): errors when the key is missing
        responses=[
            Response(when="attrs.service == 'ssh'", action="open_ticket"),
            Response(when="true", action="notify_analyst"),
        ],
    )


def test_a_condition_that_errors_on_a_case_is_false_not_an_exception():
    playbook = _attrs_playbook()
    pset = PlaybookSet([playbook])
    ctx = make_ctx(["x"])
    assert pset.match(ctx) is None
    assert pset.choose(playbook, ctx).action == "notify_analyst"
    assert pset.match({}) is None
    assert pset.match(make_ctx(["x"], attrs={"bytes_out": 5000})) is playbook


def test_a_non_boolean_condition_does_not_hold():
    playbook = Playbook(name="odd", title="t", incident_class="x", priority=0, when="alert_count",
                        responses=[Response(when="'yes'", action="notify_analyst")])
    pset = PlaybookSet([playbook])
    assert pset.match(make_ctx([], alert_count=1)) is None
    assert pset.choose(playbook, make_ctx([])) is None


_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=20),
    st.binary(max_size=8),
)
_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
_ctx_key = st.sampled_from(sorted(make_ctx([]))) | st.text(max_size=8)
_typed_ctx = st.builds(
    make_ctx,
    rules=st.lists(st.sampled_from([c[0][0] for c in CLASS_CASES]) | st.text(max_size=10), max_size=3),
    verdict=st.sampled_from(["true_positive", "benign_positive", "false_positive", "undetermined", ""]),
    confidence=st.floats(min_value=0, max_value=1) | st.integers() | st.none(),
    attrs=st.dictionaries(st.text(max_size=12), _values, max_size=4),
)
_any_ctx = st.one_of(
    _typed_ctx,
    st.dictionaries(_ctx_key, _values, max_size=8),
    st.builds(lambda base, junk: {**base, **junk}, _typed_ctx, st.dictionaries(_ctx_key, _values, max_size=4)),
)


@settings(max_examples=300, deadline=None)
@given(ctx=_any_ctx)
def test_arbitrary_contexts_never_make_match_or_choose_raise(shipped: PlaybookSet, ctx: dict):
    playbook = shipped.match(ctx)
    for candidate in [playbook, *shipped.playbooks] if playbook else shipped.playbooks:
        shipped.choose(candidate, ctx)
        shipped.menu(candidate, ctx)


# --- broken playbooks fail at file:line --------------------------------------------


def _marked_line(path: Path) -> int:
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if line.rstrip().endswith(MARKER) and not line.lstrip().startswith("#"):
            return number
    raise AssertionError(f"{path.name} has no {MARKER!r} marker")


def _load_error(path: Path) -> PlaybookError:
    with pytest.raises(PlaybookError) as info:
        load_playbook(path)
    return info.value


@pytest.mark.parametrize(
    ("filename", "fragment"),
    [
        ("bad_cel.yml", "invalid CEL expression"),
        ("bad_playbook_when.yml", "invalid CEL expression"),
        ("unknown_action.yml", "unknown action 'nuke_from_orbit'"),
        ("unknown_key.yml", "unknown key"),
        ("missing_target.yml", "needs a target of kind 'ip'"),
        ("wrong_target_kind.yml", "targets kind 'ip', not 'host'"),
        ("missing_ttl.yml", "ttl_seconds"),
        ("duplicate_key.yml", "duplicate key 'action'"),
        ("bad_yaml.yml", "invalid YAML"),
    ],
)
def test_a_broken_playbook_names_its_file_and_line(filename: str, fragment: str):
    path = BROKEN / filename
    error = _load_error(path)
    line = _marked_line(path)
    assert f"{filename}:{line}:" in str(error)
    assert fragment in str(error)
    assert error.line == line
    assert isinstance(error, ValueError)


def test_every_broken_playbook_has_a_test():
    tested = {"bad_cel.yml", "bad_playbook_when.yml", "unknown_action.yml", "unknown_key.yml",
              "missing_target.yml", "wrong_target_kind.yml", "missing_ttl.yml", "duplicate_key.yml",
              "bad_yaml.yml"}
    assert {p.name for p in BROKEN.glob("*.yml")} == tested


def test_loading_the_broken_folder_fails():
    with pytest.raises(PlaybookError):
        load_playbooks(BROKEN)


def test_a_name_used_by_two_files_is_an_error(tmp_path: Path):
    shutil.copy(PLAYBOOKS / "default.yml", tmp_path / "a_default.yml")
    second = tmp_path / "b_default.yml"
    second.write_text("# a copy under another file name\n" + (PLAYBOOKS / "default.yml").read_text())
    name_line = next(i for i, text in enumerate(second.read_text().splitlines(), 1) if text.startswith("name:"))
    with pytest.raises(PlaybookError) as info:
        load_playbooks(tmp_path)
    message = str(info.value)
    assert f"b_default.yml:{name_line}:" in message
    assert "duplicate playbook name 'default'" in message
    assert "a_default.yml" in message


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("", 1, "empty"),
        ("- just\n- a list\n", 1, "mapping"),
        ("name: x\nsource: here:1\n", 2, "set by the loader"),
        ("name: x\ntitle: t\nincident_class: c\npriority: '5'\nwhen: 'true'\n"
         "responses:\n  - {when: 'true', action: notify_analyst}\n", 4, "priority"),
        ("name: x\ntitle: t\nincident_class: c\npriority: 5\nwhen: 'true'\nresponses: []\n", 6, "responses"),
        ("name: x\ntitle: t\nincident_class: c\npriority: 5\nwhen: 'true'\n"
         "responses:\n  - {when: 'true', action: notify_analyst, target: {kind: host}}\n", 7, "takes no target"),
    ],
)
def test_other_malformed_files_are_located_too(tmp_path: Path, text: str, line: int, fragment: str):
    path = tmp_path / "odd.yml"
    path.write_text(text)
    error = _load_error(path)
    assert f"odd.yml:{line}:" in str(error)
    assert fragment in str(error)


def test_an_unquoted_boolean_condition_is_accepted(tmp_path: Path):
    path = tmp_path / "bool.yml"
    path.write_text("name: x\ntitle: t\nincident_class: c\npriority: 5\nwhen: true\n"
                    "responses:\n  - {when: true, action: notify_analyst}\n")
    playbook = load_playbook(path)
    assert playbook.when == "true"
    assert PlaybookSet([playbook]).match({}) is playbook
