"""OCSF 1.x: Detection Finding (2004) and Security Finding (2001) as alerts, Authentication (3002) as events."""

from connectors.ocsf.mapping import detect, to_alert

__all__ = ["detect", "to_alert"]
