"""Okta: identity role and privilege (enricher); suspend and clear sessions (responder)."""

from connectors.okta.enricher import OktaEnricher
from connectors.okta.responder import OktaResponder

__all__ = ["OktaEnricher", "OktaResponder"]
