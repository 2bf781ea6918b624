"""Wazuh alerts (``alerts.json`` lines, or indexer / Logstash documents with ``_source``)."""

from connectors.wazuh.mapping import detect, to_alert

__all__ = ["detect", "to_alert"]
