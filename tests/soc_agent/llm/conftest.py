"""The fake OpenAI-compatible endpoint (``tests/fake_llm.py``) as a fixture."""

from __future__ import annotations

import pytest

from tests.fake_llm import FakeModel, running_fake_model

__all__ = ["FakeModel", "fake_model"]


@pytest.fixture
def fake_model():
    """A running fake endpoint on loopback; yields (FakeModel, base_url)."""
    with running_fake_model() as (model, url):
        yield model, url
