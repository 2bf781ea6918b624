"""The LLM reasoner: any OpenAI-compatible endpoint behind the ``Reasoner`` protocol.

The model reads the case as fenced, labelled data and answers with a
structured verdict; the answer is checked against the case (evidence ids
must exist, the action must be on the menu) and against the deterministic
assessment. The model never acts: the guard still judges every action.

The names below load on first use: the injection detector runs in every
graph and decision-point process, and must not bring the model client
(openai) with it.
"""

from __future__ import annotations

from soc_agent.lazy import lazy_attributes

_LAZY = {"LLMReasoner": "reasoner", "LLMSettings": "config", "scan_case": "injection", "scan_text": "injection"}

__all__ = ["LLMReasoner", "LLMSettings", "scan_case", "scan_text"]

__getattr__ = lazy_attributes(__name__, _LAZY)
