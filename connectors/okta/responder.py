"""Okta responder: suspend / unsuspend a user and clear their sessions.

``disable_account`` suspends (reversible, unlike deactivate, which loses
app assignments); its rollback ``enable_account`` unsuspends.
``revoke_sessions`` clears every session and OAuth token; it has no undo.
The API token needs ``okta.users.manage``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import quote

from connectors.errors import ConnectorError
from connectors.http import ConnectorClient
from connectors.base import ResponderError
from soc_agent.types import ProposedAction

_MANAGE = "okta.users.manage"


class OktaResponder:
    """Carries out ``idp.disable_user`` and ``idp.revoke_sessions`` in Okta."""

    capabilities = frozenset({"idp.disable_user", "idp.revoke_sessions"})

    def __init__(self, client: ConnectorClient, *, name: str = "okta") -> None:
        self.name = name
        self.client = client

    def _user(self, action: ProposedAction) -> dict[str, Any]:
        if action.target is None:
            raise ResponderError(f"{self.name}: {action.name} needs a user target")
        return self.client.call("GET", f"/api/v1/users/{quote(action.target.value, safe='@')}",
                                permission="okta.users.read")

    def execute(self, action: ProposedAction, case_id: str, action_id: int, now: datetime) -> dict[str, Any]:
        """Suspend the user or clear their sessions; idempotent."""
        user = self._user(action)
        uid = user.get("id")
        if action.name == "disable_account":
            if user.get("status") == "SUSPENDED":
                return {"user": action.target.value, "status": "SUSPENDED", "already_active": True}
            self.client.call("POST", f"/api/v1/users/{uid}/lifecycle/suspend", permission=_MANAGE, shape=None)
            return {"user": action.target.value, "okta_id": uid, "status": "SUSPENDED"}
        if action.name == "revoke_sessions":
            self.client.call("DELETE", f"/api/v1/users/{uid}/sessions", params={"oauthTokens": "true"},
                             permission=_MANAGE, shape=None)
            return {"user": action.target.value, "okta_id": uid, "sessions_cleared": True}
        raise ResponderError(f"{self.name} cannot run {action.name}")

    def verify(self, action: ProposedAction) -> bool:
        """A suspension is verified by the user's status; cleared sessions cannot be observed."""
        if action.name != "disable_account":
            return False  # re-clearing sessions is harmless, so let the executor run it again
        try:
            return self._user(action).get("status") == "SUSPENDED"
        except ConnectorError:
            return False

    def rollback(self, action: ProposedAction, case_id: str, now: datetime) -> dict[str, Any]:
        """Unsuspend a suspended user; sessions cannot be given back."""
        if action.name != "disable_account":
            raise ResponderError(f"{self.name}: {action.name} has no rollback")
        user = self._user(action)
        if user.get("status") != "SUSPENDED":
            return {"user": action.target.value, "status": user.get("status"), "already_lifted": True}
        self.client.call("POST", f"/api/v1/users/{user.get('id')}/lifecycle/unsuspend", permission=_MANAGE,
                         shape=None)
        return {"user": action.target.value, "status": "ACTIVE", "lifted": True}

    def expire(self, now: datetime) -> list[tuple[str, str, int | None]]:
        """Okta effects here carry no TTL."""
        return []
