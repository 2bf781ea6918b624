"""Microsoft Entra ID over Graph: user role and directory roles (enricher); disable and revoke (responder)."""

from connectors.entra.enricher import EntraEnricher
from connectors.entra.responder import EntraResponder

__all__ = ["EntraEnricher", "EntraResponder"]
