"""The ticketing webhook's way back: the agent's notes posted through the ticket responders.

``soc_agent.runners.webhooks.TicketPoster`` posts to every ticket linked to a
case through a ``TicketSink``. This one hands each post to the configured
responder for that provider (Jira, ServiceNow, TheHive: each has
``post_to_ticket``), so the same least-privilege client that opens and
closes tickets also comments on them. A provider with no configured
responder is refused with ``ConfigError`` (not retried): the poster records the post as
failed, nothing is silently dropped.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from connectors.errors import ConfigError

TICKET_PROVIDERS = ("jira", "servicenow", "thehive")
"""Providers the ticketing webhook accepts; a responder whose ``provider`` is one of them serves its posts."""


class ResponderTicketSink:
    """Dispatches ``post(provider, ticket_id, kind, body)`` to the responder of that provider."""

    def __init__(self, responders: Iterable[Any]) -> None:
        """Keep the responders that can post to a ticket, by provider (the first of a provider wins)."""
        self._by_provider: dict[str, Any] = {}
        for responder in responders:
            provider = getattr(responder, "provider", None)
            if provider in TICKET_PROVIDERS and hasattr(responder, "post_to_ticket"):
                self._by_provider.setdefault(provider, responder)

    @property
    def providers(self) -> frozenset[str]:
        """Providers this sink can post to."""
        return frozenset(self._by_provider)

    def post(self, provider: str, ticket_id: str, kind: str, body: str) -> None:
        """Post ``body`` to the ticket; raises a ``ConnectorError`` (or ``ResponderError``) on failure."""
        responder = self._by_provider.get(provider)
        if responder is None:
            raise ConfigError(provider, "no ticket responder is configured for this provider")
        responder.post_to_ticket(ticket_id, body)
