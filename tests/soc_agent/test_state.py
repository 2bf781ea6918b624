"""The run trace: one line per node, built by ``step`` and read back by ``traced_nodes``."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from soc_agent.state import step, traced_nodes

_NODE = st.from_regex(r"[a-z_]{1,16}( \([a-z]{1,12}\))?", fullmatch=True)


def test_a_step_is_one_line_naming_its_node():
    assert step("guard", "deny (enforce)") == ["guard: deny (enforce)"]
    assert traced_nodes(["ingest: rule-1 (new alert)", "reason (llm): true_positive at 0.91"]) == [
        "ingest", "reason (llm)"]


@given(nodes=st.lists(st.tuples(_NODE, st.text(max_size=40)), max_size=8))
def test_the_nodes_come_back_whatever_the_outcomes_say(nodes):
    # Outcomes carry alert text (a rule id, a degraded enricher's reason), colons included.
    trace = [line for node, outcome in nodes for line in step(node, outcome)]
    assert traced_nodes(trace) == [node for node, _ in nodes]
