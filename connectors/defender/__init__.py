"""Microsoft Defender for Endpoint: ``/api/alerts`` mapping; isolate and release machines."""

from connectors.defender.mapping import detect, to_alert
from connectors.defender.responder import DefenderResponder

__all__ = ["DefenderResponder", "detect", "to_alert"]
