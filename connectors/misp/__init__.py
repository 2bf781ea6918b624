"""MISP threat intel: attribute search as an enricher."""

from connectors.misp.enricher import MispEnricher

__all__ = ["MispEnricher"]
