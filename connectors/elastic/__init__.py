"""Elastic Security detection alerts (``.alerts-security.alerts-*`` documents, Kibana 8.x)."""

from connectors.elastic.mapping import detect, to_alert

__all__ = ["detect", "to_alert"]
