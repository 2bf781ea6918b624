"""Spotting instructions hidden in alert data.

Alert fields are attacker-controlled: a command line, a file name, an email
subject or an account name can carry text aimed at the model. This detector
flags instruction-like content so the case can never be auto-closed as
benign on the model's word; it does not try to be clever about intent.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from soc_agent.types import Alert

_PATTERNS = [
    ("override", r"\b(ignore|disregard|forget|override)\b.{0,40}\b(previous|prior|above|earlier|all|your|the)\b"
                 r".{0,20}\b(instruction|prompt|rule|guideline|context|message)s?"),
    # "user:" is left out on purpose: logs say "user: alice" all day long.
    ("role_marker", r"(^|[\s\"'>\[(])(system|assistant|developer)\s*:|<\|?(im_start|im_end|system|"
                    r"start_of_turn|end_of_turn)\|?>|\[/?(inst|sys)\]|###\s*(instruction|system|response)"),
    ("verdict_steer", r"\b(mark|classify|label|treat|report|flag|consider|close)\b.{0,30}\b(this|it|the|as)\b"
                      r".{0,30}\b(benign|false[ _-]?positive|safe|harmless|legitimate|clean|not malicious|"
                      r"closed?)\b"),
    ("addressing_ai", r"\b(note|message|instruction)s?\s+(to|for)\s+(the\s+)?(ai|llm|model|assistant|analyst "
                      r"bot|soc[- ]?agent)\b|\b(dear|hey|attention)\s+(ai|llm|model|assistant)\b"),
    ("new_persona", r"\byou\s+are\s+(now|no longer)\b|\bact\s+as\b|\bpretend\s+to\s+be\b"),
    ("assert_safe", r"\b(this|the)\s+(email|alert|file|process|activity|message|login)\s+is\s+(safe|benign|"
                    r"legitimate|authori[sz]ed|expected)\b"),
    ("allowlist_steer", r"\b(add|put|place)\b.{0,30}\b(allow ?list|whitelist|exclusion|exception)s?\b"),
]
_COMPILED = [(name, re.compile(pattern, re.IGNORECASE | re.DOTALL)) for name, pattern in _PATTERNS]


def scan_text(text: str) -> list[str]:
    """Names of the patterns ``text`` matches (empty when it looks like plain data)."""
    if not text:
        return []
    sample = text[:20_000]
    return [name for name, pattern in _COMPILED if pattern.search(sample)]


def _strings(value: object, path: str) -> Iterable[tuple[str, str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, item in list(value.items())[:200]:
            yield from _strings(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value[:200]):
            yield from _strings(item, f"{path}[{index}]")


def scan_case(alerts: Iterable[Alert]) -> list[str]:
    """``alert_id.field: pattern`` for every instruction-like field in the alerts."""
    hits = []
    for alert in alerts:
        fields = [("title", alert.title), ("description", alert.description)]
        fields += list(_strings(alert.attributes, "attributes"))
        fields += [(f"entity.{e.kind}", e.value) for e in alert.entities]
        for field, text in fields:
            for name in scan_text(text):
                hits.append(f"{alert.id}.{field}: {name}")
    return hits
