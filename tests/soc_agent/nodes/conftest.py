"""Fixtures for node unit tests: the real services on a temporary SQLite workdir."""

from __future__ import annotations

import pytest

from soc_agent.config import Settings
from soc_agent.composition import build_services
from soc_agent.services import Services


@pytest.fixture
def svc(settings: Settings) -> Services:
    """The services the graph's nodes get as runtime context: shipped playbooks, demo data, demo autonomy."""
    services = build_services(settings)
    yield services
    services.store.close()


@pytest.fixture
def supervised_svc(supervised_settings: Settings) -> Services:
    """The services of a fresh install: no autonomy earned, so nothing above observe runs without a person."""
    services = build_services(supervised_settings)
    yield services
    services.store.close()
