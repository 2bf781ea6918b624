"""The shipped policy for AGT's ``PolicyEvaluator``: one condition per rule, priority-ordered, first match wins.

Each shipped rule becomes one AGT rule over a precomputed field of ``facts.flat_context``
(AGT has no AND). The weighted risk signals have no AGT counterpart: AGT has no score and no
graded outcome, so a call the signals alone would refuse is allowed here. ``extra`` adds
generated rules (never matching the workload) ahead of the shipped ones, as for our engine.
"""

from __future__ import annotations

from typing import Any

AVAILABLE = True
try:
    from agent_os.policies import PolicyDocument, PolicyEvaluator
except ImportError:  # pragma: no cover - the peer is optional
    AVAILABLE = False

# (name, field, operator, value, action): the shipped rules in order.
SHIPPED = [
    ("missing-permission", "missing_permission", "eq", True, "deny"),
    ("restricted-read-not-entitled", "restricted_unentitled", "eq", True, "deny"),
    ("confidential-read-not-entitled", "confidential_unentitled", "eq", True, "deny"),
    ("injection-then-shell", "shell_after_injection", "eq", True, "block"),
    ("restricted-then-new-host", "restricted_then_new_host", "eq", True, "block"),
    ("confidential-then-new-host", "confidential_then_new_host", "eq", True, "deny"),
    ("injected-outbound-with-sensitive-context", "injected_outbound_sensitive", "eq", True, "deny"),
    ("plaintext-after-sensitive-read", "plaintext_after_sensitive", "eq", True, "deny"),
    ("destructive-sql", "command", "matches", r"(?i)\b(drop|truncate)\b", "deny"),
    ("delegation-escalates", "delegation_escalates", "eq", True, "deny"),
    ("shell-pipe-to-interpreter", "command", "matches", r"(curl|wget)[^|]*[|][ ]*(ba|z)?sh", "block"),
    ("shell-recursive-delete", "command", "matches", r"rm[ ]+-[a-zA-Z]*r[a-zA-Z]*[ ]+/", "deny"),
    ("secrets-file-read", "path", "matches", r"/\.ssh/|\.env$|\.pem$", "deny"),
    ("system-path-write", "path", "matches", r"^/(etc|usr|boot)/", "deny"),
    ("ip-literal-new-host", "dest_host", "matches", r"^[0-9.]+$", "deny"),
    ("watchlisted-destination", "dest_host", "in", ["evil.example", "c2.example"], "deny"),
    ("untrusted-write", "untrusted", "eq", True, "audit"),
    ("db-write-low-confidence", "tool_kind", "eq", "never-a-kind", "deny"),
    ("restricted-table-write", "tool_kind", "eq", "never-a-kind-2", "deny"),
    ("delegation-after-injection", "injected", "eq", "never", "deny"),
    ("delegation-unknown-agent", "tool_name", "eq", "never-a-tool", "deny"),
    ("many-destinations", "tool_name", "eq", "never-a-tool-2", "deny"),
]


def build(extra: int = 0) -> Any:
    """An evaluator holding the shipped rules plus ``extra`` generated ones."""
    rules = []
    n = len(SHIPPED) + extra
    for i in range(extra):
        field, op, value = [("tool_name", "eq", f"tool_{i}"), ("dest_host", "eq", f"blocked-{i}.example"),
                            ("path", "matches", f"^/secret/{i}/")][i % 3]
        rules.append({"name": f"generated-{i}", "condition": {"field": field, "operator": op, "value": value},
                      "action": "deny", "priority": 10_000 - i})
    for j, (name, field, op, value, action) in enumerate(SHIPPED):
        rules.append({"name": name, "condition": {"field": field, "operator": op, "value": value},
                      "action": action, "priority": n - len(rules) + 1000 - j})
    doc = PolicyDocument.model_validate({"name": "pdp-bench", "rules": rules, "defaults": {"action": "allow"}})
    return PolicyEvaluator(policies=[doc])


def decide(evaluator: Any, context: dict[str, Any]) -> str:
    """AGT's decision for one flat context."""
    return evaluator.evaluate(context).action
