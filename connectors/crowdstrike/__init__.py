"""CrowdStrike Falcon: Alerts API v2 objects and Streaming API detection summary events."""

from connectors.crowdstrike.mapping import detect, to_alert

__all__ = ["detect", "to_alert"]
