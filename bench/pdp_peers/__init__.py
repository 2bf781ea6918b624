"""The decision point's peers for ``bench/pdp.py``, each given the same policy in its own language.

* ``agt``: Microsoft's Agent Governance Toolkit, its declarative engine
  ``agent_os.policies.PolicyEvaluator`` (PyPI ``agent-governance-toolkit[core]``).
* ``cedar``: Cedar through ``cedarpy`` (pre-parsed ``PolicySet`` and ``Entities`` handles).

Both take a flat context. What our engine derives (the tool's kind from the policy's tool
table, entitlement, the session's memory: highest classification read, untrusted content,
whether a destination is new) is computed for them by ``facts.flat_context`` and is *not*
timed: only the peer's own evaluation is. Neither peer can keep session memory or grade an
outcome beyond allow/deny (AGT: allow, deny, audit, block; Cedar: permit, forbid).
"""
