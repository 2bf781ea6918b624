"""Microsoft Sentinel ``SecurityAlert`` rows and Microsoft Graph security alerts (v2 and legacy v1)."""

from connectors.sentinel.mapping import detect, to_alert

__all__ = ["detect", "to_alert"]
