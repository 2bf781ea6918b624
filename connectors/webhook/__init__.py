"""Generic signed webhook notification."""

from connectors.webhook.responder import SIGNATURE_HEADER, TIMESTAMP_HEADER, WebhookResponder, sign, verify_signature

__all__ = ["SIGNATURE_HEADER", "TIMESTAMP_HEADER", "WebhookResponder", "sign", "verify_signature"]
