"""The decision point's policy: the shipped example loads, every rule and signal has a case, errors name file:line."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from soc_agent.pdp import PDP, PolicyError, load_policy
from soc_agent.pdp.policy import SHIPPED_POLICY

CASES = Path(__file__).resolve().parents[3] / "playbooks" / "pdp-tests"


def _expectations(key: str) -> set[str]:
    found = set()
    for path in CASES.glob("*.yml"):
        for case in yaml.safe_load(path.read_text())["cases"]:
            for step in case["steps"]:
                expect = step.get("expect")
                if isinstance(expect, dict) and key in expect:
                    found.add(expect[key])
    return found


def test_the_shipped_policy_loads_with_at_least_twenty_rules():
    policy = load_policy(SHIPPED_POLICY)
    assert len(policy.rules) >= 20
    assert all(rule.line > 0 for rule in policy.rules)


def test_every_shipped_rule_and_signal_has_a_policy_test_case():
    policy = load_policy(SHIPPED_POLICY)
    assert {r.name for r in policy.rules} - _expectations("rule") == set()
    assert {s.name for s in policy.signals} - _expectations("signal") == set()


def test_every_shipped_condition_runs_on_the_fast_path():
    # A condition outside the fast subset costs tens of microseconds per call (the CEL context).
    assert PDP(load_policy(SHIPPED_POLICY))._compiled.fallbacks == []


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.yml"
    path.write_text(text)
    return path


def test_a_yaml_syntax_error_names_file_and_line(tmp_path):
    path = _write(tmp_path, "rules:\n  - name: a\n    when: [unclosed\n    decision: deny\n")
    with pytest.raises(PolicyError, match=rf"^{path}:\d+: invalid YAML"):
        load_policy(path)


def test_a_cel_compile_error_names_the_line_of_its_condition(tmp_path):
    path = _write(tmp_path, "version: 1\nrules:\n  - name: ok\n    when: 'true'\n    decision: deny\n"
                            "  - name: broken\n    kinds: [shell]\n    when: 'session.injected &&'\n"
                            "    decision: deny\n")
    with pytest.raises(PolicyError, match=rf"^{path}:8: rules\.1\.when: CEL does not compile"):
        load_policy(path)


def test_an_unknown_decision_names_its_line(tmp_path):
    path = _write(tmp_path, "rules:\n  - name: a\n    when: 'true'\n    decision: allow_always\n")
    with pytest.raises(PolicyError, match=rf"^{path}:4: rules\.0\.decision"):
        load_policy(path)


def test_an_unknown_key_names_its_line(tmp_path):
    path = _write(tmp_path, "signals:\n  - name: s\n    when: 'true'\n    weight: 0.2\n    wieght: 0.3\n")
    with pytest.raises(PolicyError, match=rf"^{path}:5: signals\.0\.wieght"):
        load_policy(path)


def test_a_remove_permissions_rule_must_name_permissions(tmp_path):
    path = _write(tmp_path, "rules:\n  - name: r\n    when: 'true'\n    decision: remove_permissions\n")
    with pytest.raises(PolicyError, match=rf"^{path}:2: rules\.0: a remove_permissions rule must name"):
        load_policy(path)


def test_duplicate_rule_names_are_refused(tmp_path):
    path = _write(tmp_path, "rules:\n  - {name: r, decision: deny}\n  - {name: r, decision: deny}\n")
    with pytest.raises(PolicyError, match="duplicate rule name 'r'"):
        load_policy(path)


def test_a_missing_file_names_it(tmp_path):
    with pytest.raises(PolicyError, match=rf"^{tmp_path / 'nope.yml'}: cannot read policy"):
        load_policy(tmp_path / "nope.yml")


def test_the_public_surface_resolves_and_all_is_sorted():
    from soc_agent import pdp

    assert pdp.__all__ == sorted(pdp.__all__, key=lambda n: (not n.isupper(), not n[0].isupper(), n))
    for name in pdp.__all__:
        assert getattr(pdp, name) is not None
    assert callable(pdp.decide) and pdp.PDP.from_file and pdp.create_app
