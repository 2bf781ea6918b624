"""Microsoft Defender for Endpoint: isolate and release machines."""

from connectors.defender.responder import DefenderResponder

__all__ = ["DefenderResponder"]
