"""Enrichment: what the organisation knows about a case's entities.

Local enrichers read the YAML files in the data folder (assets, identities,
threat intel, allowlists). Each runs under a timeout; one that fails or is
slow degrades the evidence (a ``degraded`` item says so) and never fails
the run.
"""

from soc_agent.enrich.local import (
    AllowlistEntry,
    Asset,
    Identity,
    Indicator,
    LocalKnowledge,
)
from soc_agent.enrich.runner import EnrichmentCache, EnrichmentResult, enrich_case, local_enrichers

__all__ = [
    "AllowlistEntry",
    "Asset",
    "EnrichmentCache",
    "EnrichmentResult",
    "Identity",
    "Indicator",
    "LocalKnowledge",
    "enrich_case",
    "local_enrichers",
]
