"""Entra ID responder over Microsoft Graph: block sign-in and revoke sessions.

``disable_account`` sets ``accountEnabled`` false (rollback sets it true);
``revoke_sessions`` calls ``revokeSignInSessions``, which invalidates
refresh tokens and has no undo. Needs ``User.ReadWrite.All`` (or
``User.EnableDisableAccount.All``) and ``User.RevokeSessions.All``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import quote

from connectors.errors import ConnectorError
from connectors.http import ConnectorClient
from connectors.base import ResponderError
from soc_agent.types import ProposedAction


class EntraResponder:
    """Carries out ``idp.disable_user`` and ``idp.revoke_sessions`` in Entra ID."""

    capabilities = frozenset({"idp.disable_user", "idp.revoke_sessions"})

    def __init__(self, client: ConnectorClient, *, name: str = "entra") -> None:
        self.name = name
        self.client = client

    def _path(self, action: ProposedAction) -> str:
        if action.target is None:
            raise ResponderError(f"{self.name}: {action.name} needs a user target")
        return f"/v1.0/users/{quote(action.target.value, safe='@')}"

    def _set_enabled(self, action: ProposedAction, enabled: bool) -> None:
        self.client.call("PATCH", self._path(action), json={"accountEnabled": enabled},
                         permission="User.EnableDisableAccount.All", shape=None)

    def execute(self, action: ProposedAction, case_id: str, action_id: int, now: datetime) -> dict[str, Any]:
        """Block sign-in or revoke sessions; both are idempotent at Graph."""
        if action.name == "disable_account":
            self._set_enabled(action, False)
            return {"user": action.target.value, "account_enabled": False}
        if action.name == "revoke_sessions":
            self.client.call("POST", f"{self._path(action)}/revokeSignInSessions",
                             permission="User.RevokeSessions.All", shape=None)
            return {"user": action.target.value, "sessions_revoked": True}
        raise ResponderError(f"{self.name} cannot run {action.name}")

    def verify(self, action: ProposedAction) -> bool:
        """A disabled account is verified by ``accountEnabled``; revocation cannot be observed."""
        if action.name != "disable_account":
            return False
        try:
            user = self.client.call("GET", self._path(action), params={"$select": "accountEnabled"},
                                    permission="User.Read.All")
        except ConnectorError:
            return False
        return user.get("accountEnabled") is False

    def rollback(self, action: ProposedAction, case_id: str, now: datetime) -> dict[str, Any]:
        """Re-enable sign-in; revoked sessions cannot be given back."""
        if action.name != "disable_account":
            raise ResponderError(f"{self.name}: {action.name} has no rollback")
        self._set_enabled(action, True)
        return {"user": action.target.value, "account_enabled": True, "lifted": True}

    def expire(self, now: datetime) -> list[tuple[str, str, int | None]]:
        """No TTL'd effects."""
        return []
