"""The LLM reasoner: any OpenAI-compatible endpoint behind the ``Reasoner`` protocol.

The model reads the case as fenced, labelled data and answers with a
structured verdict; the answer is checked against the case (evidence ids
must exist, the action must be on the menu) and against the deterministic
assessment. The model never acts: the guard still judges every action.
"""

from soc_agent.llm.config import LLMSettings
from soc_agent.llm.injection import scan_case, scan_text
from soc_agent.llm.reasoner import LLMReasoner

__all__ = ["LLMReasoner", "LLMSettings", "scan_case", "scan_text"]
