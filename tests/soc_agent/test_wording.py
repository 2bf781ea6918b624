"""English for sentences built from data: articles and counts."""

from __future__ import annotations

import pytest

from soc_agent.wording import a_or_an, counted


@pytest.mark.parametrize(("phrase", "expected"), [
    ("executive", "an executive"), ("employee", "an employee"), ("analyst", "an analyst"),
    ("unspecified", "an unspecified"), ("undetermined", "an undetermined"), ("Okta admin", "an Okta admin"),
    ("contractor", "a contractor"), ("privileged executive", "a privileged executive"),
    ("service", "a service"), ("lead", "a lead"), ("user", "a user"), ("unique id", "a unique id"),
    ("one-time code", "a one-time code"), ("hour", "an hour"), ("host", "a host"),
])
def test_the_article_follows_the_sound_of_the_first_word(phrase, expected):
    assert a_or_an(phrase) == expected


def test_counts_take_the_noun_in_the_right_number():
    assert counted(1, "case") == "1 case" and counted(0, "case") == "0 cases" and counted(2, "case") == "2 cases"
    assert counted(1, "entity", "entities") == "1 entity" and counted(4, "entity", "entities") == "4 entities"
