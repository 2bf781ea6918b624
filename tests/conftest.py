"""Shared fixtures: a pipeline on a temporary workdir with the shipped playbooks, demo data and demo autonomy."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from soc_agent.config import DEMO_AUTONOMY, Settings


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Embedded settings in a fresh temporary workdir, in the demo environment with the autonomy it earned.

    A fresh install has no autonomy file and runs supervised; ``supervised_settings`` is that install.
    """
    return Settings(workdir=tmp_path / "work", autonomy_file=DEMO_AUTONOMY)


@pytest.fixture
def supervised_settings(tmp_path: Path) -> Settings:
    """A fresh install: the shipped playbooks and no autonomy file anywhere."""
    return Settings(workdir=tmp_path / "fresh", autonomy_file=tmp_path / "no-autonomy.yml")


@pytest.fixture
def pipeline(settings: Settings):
    """A pipeline that is closed after the test."""
    from soc_agent.pipeline import Pipeline

    p = Pipeline(settings)
    yield p
    p.close()


def make_alert(rule_id: str, entities: list[tuple[str, str, str | None]], *, alert_id: str,
               minutes_ago: float = 5, kind: str = "alert", severity: str = "high", **attributes) -> bytes:
    """A native alert line with a recent timestamp."""
    ts = datetime.now(timezone.utc) - timedelta(minutes=minutes_ago)
    return json.dumps({
        "id": alert_id, "kind": kind, "rule_id": rule_id, "title": rule_id.replace("_", " "),
        "severity": severity, "timestamp": ts.isoformat(),
        "entities": [{"kind": k, "value": v, "role": r} for k, v, r in entities],
        "attributes": attributes,
    }).encode()
