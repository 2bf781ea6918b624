"""STIX 2.1 indicators from a bundle file or a TAXII 2.1 collection."""

from connectors.stix.enricher import StixEnricher, parse_pattern

__all__ = ["StixEnricher", "parse_pattern"]
