"""The one configuration error and YAML reader: every loader's problems name file:line."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import pytest
from pydantic import BaseModel, ConfigDict

from connectors.errors import ConfigError as ConnectorConfigError
from connectors.generic.mapping import GenericMappingError, load_mapping
from connectors.loader import load_connectors_config
from soc_agent.config_file import ConfigError, parse_yaml, read_yaml
from soc_agent.detect import ThresholdDetector
from soc_agent.edge.guardlite import compile_policy
from soc_agent.enrich.local import LocalKnowledge
from soc_agent.pdp.cli import CaseError, load_cases
from soc_agent.pdp.policy import PolicyError
from soc_agent.pdp.policy import load_policy as load_pdp_policy
from soc_agent.playbooks import PlaybookError
from soc_agent.policy import load_policy, read_autonomy
from soc_agent.runners.auth import TokenFileError, TokenStore
from soc_agent.runners.edge_api import EdgeConfig
from soc_agent.runners.shadow import GateConfig
from soc_agent.scoring import RuleBook
from soc_agent.vendor_evidence import EvidenceBook

SHIPPED_POLICY = Path(__file__).resolve().parents[2] / "playbooks" / "policy.yml"
MARK = "# <- error"


class _Pair(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    count: int


# ---- the reader ---------------------------------------------------------------------------------


def test_every_key_and_item_has_its_line():
    doc = parse_yaml("a: 1\nb:\n  - x\n  - {c: 2}\n", "f.yml")
    assert doc.data == {"a": 1, "b": ["x", {"c": 2}]}
    assert doc.line_of(("a",)) == 1
    assert doc.line_of(("b",)) == 2
    assert doc.line_of(("b", 1)) == 4
    assert doc.line_of(("b", 1, "c")) == 4
    # A key the file does not have is reported where its nearest enclosing item starts.
    assert doc.line_of(("b", 1, "missing")) == 4
    assert doc.line_of(("nope",)) == 1


def test_a_duplicate_key_is_refused_at_its_line():
    with pytest.raises(ConfigError) as info:
        parse_yaml("a: 1\nb: 2\na: 3\n", "dup.yml")
    assert str(info.value) == "dup.yml:3: duplicate key 'a'"
    assert (info.value.file, info.value.line) == ("dup.yml", 3)


def test_invalid_yaml_names_its_line_and_not_the_text():
    with pytest.raises(ConfigError) as info:
        parse_yaml("a: 1\nsecret: [hunter2\n", "bad.yml")
    assert str(info.value).startswith("bad.yml:3: invalid YAML")
    assert "hunter2" not in str(info.value)


def test_merge_keys_apply_as_safe_load_applies_them():
    doc = parse_yaml("base: &b {x: 1}\nchild:\n  <<: *b\n  y: 2\n")
    assert doc.data["child"] == {"x": 1, "y": 2}


def test_an_unreadable_file_has_no_line(tmp_path: Path):
    with pytest.raises(ConfigError) as info:
        read_yaml(tmp_path / "absent.yml")
    assert str(info.value) == f"{tmp_path / 'absent.yml'}: cannot read: No such file or directory"
    assert info.value.line == 0
    binary = tmp_path / "binary.yml"
    binary.write_bytes(b"a: \xff\xfe\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        read_yaml(binary)


def test_validation_reports_every_problem_at_its_own_line_without_the_values():
    doc = parse_yaml("items:\n  - name: a\n    count: 1\n  - name: b\n    count: sk-live-123\n"
                     "  - name: c\n    colour: red\n", "v.yml")
    with pytest.raises(ConfigError) as info:
        [doc.validate(_Pair, ("items", i), item) for i, item in enumerate(doc.data["items"])]
    assert str(info.value).startswith("v.yml:5: items.1.count: ")
    assert "sk-live-123" not in str(info.value)

    problems = "items:\n  - {name: a, colour: red}\n  - {count: x}\n"
    doc = parse_yaml(problems, "many.yml")

    class _Items(BaseModel):
        items: list[_Pair]

    with pytest.raises(ConfigError) as info:
        doc.validate(_Items)
    lines = str(info.value).splitlines()
    assert lines == [
        "many.yml:2: items.0.count: required key is missing",
        "many.yml:2: items.0.colour: unknown key",
        "many.yml:3: items.1.name: required key is missing",
        "many.yml:3: items.1.count: Input should be a valid integer, unable to parse string as an integer",
    ]
    assert info.value.line == 2


def test_a_document_that_must_be_a_mapping_says_so():
    with pytest.raises(ConfigError, match=r"^l.yml:1: expected a mapping, found a list$"):
        parse_yaml("- a\n- b\n", "l.yml").mapping()
    assert parse_yaml("", "empty.yml").mapping() == {}


def test_the_subclasses_keep_their_names_and_share_the_root():
    for cls in (PlaybookError, PolicyError, GenericMappingError, TokenFileError, CaseError, ConnectorConfigError):
        assert issubclass(cls, ConfigError)
    error = ConnectorConfigError("okta", "needs a secret", file="c.yml", line=4)
    assert str(error) == "okta: needs a secret"
    assert (error.file, error.line, error.connector) == ("c.yml", 4, "okta")
    assert isinstance(error, ValueError) and isinstance(error, RuntimeError)


# ---- every loader -------------------------------------------------------------------------------

_TOKEN = "0" * 64


def _edge(path: Path) -> Any:
    return EdgeConfig.from_file(path)


def _allowlist(path: Path) -> Any:
    return compile_policy(SHIPPED_POLICY, path)


def _local(path: Path) -> Any:
    return LocalKnowledge.from_dir(path.parent)


def _cases(path: Path) -> Any:
    return load_cases(path.parent)


# (loader, file name, text with the bad line marked, error class, fragment of the message)
LOADERS: list[tuple[Callable[[Path], Any], str, str, type[ConfigError], str]] = [
    (load_policy, "policy.yml",
     f"mode: enforce\ntiers:\n  contain_soft: {{min_confidence: high}}  {MARK}\n", ConfigError,
     "tiers.contain_soft.min_confidence"),
    (load_policy, "policy.yml", f"mode: enforce\nkill_switch: false\nmode: shadow  {MARK}\n", ConfigError,
     "duplicate key 'mode'"),
    (read_autonomy, "autonomy.yml", f"autonomy:  {MARK}\n  - brute_force\n", ConfigError,
     "autonomy: expected a mapping"),
    (RuleBook.from_file, "detectors.yml",
     f"rules:\n  r1:\n    weight: 1\n    signals:\n      - {{name: s, when: 'a ==', weight: 1, summary: x}}  {MARK}\n",
     ConfigError, "CEL does not compile"),
    (ThresholdDetector.from_file, "detectors.yml",
     f"thresholds:\n  - name: t\n    title: T\n    match_rule: x\n    group_by: {{kind: ip}}\n"
     f"    count: 1  {MARK}\n    window_s: 60\n", ConfigError, "thresholds.0.count"),
    (EvidenceBook.from_file, "evidence.yml",
     f"process_facts:\n  - name: f\n    fields: [command_line]\n    pattern: '(unclosed'  {MARK}\n"
     "    weight: 1\n    summary: s\n", ConfigError, "invalid regular expression"),
    (_local, "assets.yml",
     f"- {{host: web-1, criticality_tier: 2}}\n- {{host: db-1, criticality_tier: first}}  {MARK}\n", ConfigError,
     "1.criticality_tier"),
    (TokenStore.from_file, "tokens.yml",
     f"tokens:\n  - {{name: a, role: analyst, sha256: '{_TOKEN}'}}\n"
     f"  - {{name: b, role: analyst, sha256: abc}}  {MARK}\n", TokenFileError,
     "token entry 2: sha256 must be 64 hex"),
    (_edge, "edge.yml", f"sensors: []\nmaster_key: not-hex  {MARK}\n", ConfigError, "the master key must be hex"),
    (GateConfig.from_file, "gate.yml", f"gate:\n  min_cases: 10\n  min_agrement: 0.9  {MARK}\n", ConfigError,
     "gate.min_agrement: unknown gate setting"),
    (load_pdp_policy, "pdp-policy.yml", f"rules:\n  - name: r\n    decision: allow\n    colour: red  {MARK}\n",
     PolicyError, "rules.0.colour: unknown key"),
    (load_mapping, "mapping.yml",
     f"rule_id: a\ntimestamp: ts\nentities:\n  - {{kind: spaceship, path: x}}  {MARK}\n", GenericMappingError,
     "entities.0.kind"),
    (_allowlist, "allowlists.yml", f"- {{kind: ip, value: 10.0.0.1}}\n- {{kind: ip}}  {MARK}\n", ConfigError,
     "needs a kind and a value"),
    (_cases, "case.yml", f"name: c\nrequest: {{tool: [x}}  {MARK}\n", CaseError, "invalid YAML"),
]


@pytest.mark.parametrize(("load", "name", "text", "error", "fragment"), LOADERS,
                         ids=[f"{row[1]}-{row[4][:24]}" for row in LOADERS])
def test_a_broken_config_file_names_its_file_and_line(tmp_path: Path, load, name: str, text: str,
                                                      error: type[ConfigError], fragment: str):
    path = tmp_path / name
    path.write_text(text)
    line = next(i for i, row in enumerate(text.splitlines(), 1) if row.endswith(MARK))
    with pytest.raises(error) as info:
        load(path)
    assert str(info.value).startswith(f"{path}:{line}: "), str(info.value)
    assert fragment in str(info.value)
    assert (info.value.file, info.value.line) == (str(path), line)


def test_the_connectors_file_names_its_line_through_the_connectors_error(tmp_path: Path):
    path = tmp_path / "connectors.yml"
    path.write_text("connectors:\n  okta:\n    base_url: https://x\n    colour: red\n")
    with pytest.raises(ConnectorConfigError) as info:
        load_connectors_config(path)
    assert str(info.value) == f"loader: {path}:4: connectors.okta.colour: unknown key"
    assert (info.value.file, info.value.line) == (str(path), 4)
    assert isinstance(info.value, ConfigError)


def test_the_shipped_configuration_loads():
    # The reader is stricter than safe_load (duplicate keys): the shipped files must still pass it.
    playbooks = SHIPPED_POLICY.parent
    load_policy(SHIPPED_POLICY)
    RuleBook.from_file(playbooks / "detectors.yml")
    ThresholdDetector.from_file(playbooks / "detectors.yml")
    EvidenceBook.from_file(playbooks / "evidence.yml")
    load_pdp_policy(playbooks / "pdp-policy.yml")
    assert load_cases(playbooks / "pdp-tests")
