"""English for sentences built from data: the indefinite article and the plural a count needs.

Notes, evidence summaries and guard reasons put values from data (a role, an
address class, a count) into sentences; ``f"is a {role}"`` reads "is a
executive" for one of them. These helpers pick the form from the value.
"""

from __future__ import annotations

# Vowel letters that sound like a consonant ("a user", "a one-time code", "a eu-west resource") and
# consonants that are silent ("an hour"): the few that occur in this project's data and reasons.
_CONSONANT_SOUND = ("uni", "use", "usu", "uti", "one", "once", "eu")
_SILENT_H = ("hour", "honest", "honor", "honour", "heir")


def a_or_an(phrase: str) -> str:
    """``phrase`` with its indefinite article: ``a_or_an("executive") == "an executive"``."""
    word = phrase.lstrip().lower()
    if word.startswith(_SILENT_H):
        return f"an {phrase}"
    vowel = word[:1] in ("a", "e", "i", "o", "u") and not word.startswith(_CONSONANT_SOUND)
    return f"{'an' if vowel else 'a'} {phrase}"


def counted(n: int, singular: str, plural: str | None = None) -> str:
    """``n`` and the noun in the number it needs: ``counted(1, "alert") == "1 alert"``, ``counted(2, ...)``
    ``"2 alerts"``; ``plural`` for irregular nouns (``counted(3, "entity", "entities")``)."""
    return f"{n} {singular if n == 1 else plural or singular + 's'}"
