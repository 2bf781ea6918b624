"""The composition root: what it checks before the first alert arrives."""

from __future__ import annotations

from pathlib import Path

import pytest

from connectors.generic.mapping import GenericMappingError
from connectors.registry import formats
from soc_agent.composition import build_services
from soc_agent.config import Settings


@pytest.fixture
def fresh_formats():
    """This process's format registry rebuilt from the test's environment, and rebuilt again afterwards."""
    formats.cache_clear()
    yield
    formats.cache_clear()


def test_a_broken_generic_mapping_stops_start_up_with_its_file_named(
        settings: Settings, tmp_path: Path, monkeypatch, fresh_formats) -> None:
    broken = tmp_path / "mapping.yml"
    broken.write_text("fields: [not, a, mapping\n")
    monkeypatch.setenv("SOC_AGENT_GENERIC_MAPPING", str(broken))
    with pytest.raises(GenericMappingError, match="mapping.yml"):
        build_services(settings)


def test_without_a_generic_mapping_the_built_in_formats_are_ready(settings: Settings, monkeypatch,
                                                                   fresh_formats) -> None:
    monkeypatch.delenv("SOC_AGENT_GENERIC_MAPPING", raising=False)
    services = build_services(settings)
    try:
        assert {"elastic", "ocsf", "native"} <= set(formats())
        assert "generic" not in formats()
    finally:
        services.store.close()
