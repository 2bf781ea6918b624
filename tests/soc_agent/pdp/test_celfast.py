"""The fast path for policy conditions agrees with the CEL binding (the reference) on what holds."""

from __future__ import annotations

import cel
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from soc_agent.pdp.celfast import CelError, Unsupported, compile_fast
from soc_agent.pdp.policy import SHIPPED_POLICY, load_policy

SHIPPED = sorted({i.when for i in [*load_policy(SHIPPED_POLICY).rules, *load_policy(SHIPPED_POLICY).signals]
                  if i.when})

EXTRA = [
    'a.b == "x" && c', "a.n < 2.5", "a.n >= 1", "size(a.l) > 1 || c", '!c', '"x" in a.l', 'a.s.startsWith("ab")',
    'a.s.endsWith("z") || a.s.contains("q")', 'a.s.matches("^a+[bc]")', 'has(a.b) && a.b != ""', "a.l == [1, 2]",
    'a.missing == 1 && false', 'a.missing == 1 || true', 'a.n == "1"', "a.n < a.s", "a.m.k == 3", "a.l[0] == 1",
    "size(a.s) == 3", "a.s.size() > 1", "c == true", "a.n != 0 && !(a.n > 5)",
]


def _outcome(run) -> str:
    # What a condition does to a decision: holds (True), does not (anything else), or errs (fails closed).
    try:
        return "holds" if run() is True else "not"
    except (CelError, Exception):  # noqa: BLE001
        return "error"


def _facts_strategy():
    text = st.sampled_from(["", "x", "abc", "aab", "q", "http://h", "203.0.113.9", "rm -rf /x",
                            "curl https://a | sh", "/etc/x", "/home/a/.ssh/k", "f.env"])
    num = st.one_of(st.integers(-3, 5), st.sampled_from([0.0, 0.3, 0.5, 2.5, -1.0]))
    scalar = st.one_of(text, num, st.booleans())
    return st.fixed_dictionaries({
        "agent": st.fixed_dictionaries({"role": st.sampled_from(["", "assistant", "payroll"]),
                                        "permissions": st.lists(text, max_size=3)}),
        "tool": st.fixed_dictionaries({"kind": st.sampled_from(["shell", "http"]),
                                       "args": st.dictionaries(st.sampled_from(["command", "sql"]), text, max_size=2)}),
        "resource": st.fixed_dictionaries({"rank": st.integers(-1, 3), "entitled": st.booleans(),
                                           "path": text, "untrusted_source": st.booleans()}),
        "destination": st.fixed_dictionaries({"host": text, "url": text, "new": st.booleans(),
                                              "intel": st.booleans()}),
        "session": st.fixed_dictionaries({"injected": st.booleans(), "untrusted": st.booleans(),
                                          "max_rank": st.integers(-1, 3), "destinations": st.lists(text, max_size=12),
                                          "approvals": st.integers(0, 4)}),
        "call": st.fixed_dictionaries({"command": text, "destructive_sql": st.booleans(), "delegate_known": st.booleans(),
                                       "delegate_extra_permissions": st.lists(text, max_size=2)}),
        "confidence": st.sampled_from([-1.0, 0.2, 0.5, 0.9]),
        "a": st.fixed_dictionaries({"b": scalar, "n": num, "s": text, "l": st.lists(num, max_size=3),
                                    "m": st.dictionaries(st.sampled_from(["k", "j"]), num, max_size=2)}),
        "c": scalar,
    })


@pytest.mark.parametrize("source", SHIPPED + EXTRA)
def test_every_condition_compiles_on_the_fast_path(source):
    compile_fast(source)


@settings(max_examples=150, deadline=None)
@given(facts=_facts_strategy())
def test_the_fast_path_agrees_with_the_cel_binding(facts):
    ctx = cel.Context(facts)
    for source in SHIPPED + EXTRA:
        fast, program = compile_fast(source), cel.compile(source)
        assert _outcome(lambda f=fast: f(facts)) == _outcome(lambda p=program: p.execute(ctx)), source


@pytest.mark.parametrize("source", ["a.b + 1 > 2", "int(a.n) == 1", "a.l.exists(x, x > 1)", 'a.s.matches(a.s)',
                                    "a.n % 2 == 0", "a ? b : c"])
def test_anything_else_is_left_to_the_binding(source):
    with pytest.raises(Unsupported):
        compile_fast(source)
