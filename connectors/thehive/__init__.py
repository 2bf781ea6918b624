"""TheHive 5 (API v1): case create, comment and close."""

from connectors.thehive.responder import TheHiveResponder

__all__ = ["TheHiveResponder"]
