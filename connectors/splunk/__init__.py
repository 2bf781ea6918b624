"""Splunk Enterprise Security notable events (``index=notable`` results, REST export or HEC)."""

from connectors.splunk.mapping import detect, to_alert

__all__ = ["detect", "to_alert"]
