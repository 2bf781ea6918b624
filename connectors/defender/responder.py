"""Defender for Endpoint responder: isolate / unisolate a machine.

Machine lookup: ``GET /api/machines?$filter=computerDnsName eq '<host>'``;
isolation: ``POST /api/machines/{id}/isolate`` (``IsolationType`` from
options, default ``Full``), release: ``POST /api/machines/{id}/unisolate``.
State: the newest Isolate/Unisolate entry of ``GET /api/machineactions``.
Auth is OAuth2 client credentials (scope
``https://api.securitycenter.microsoft.com/.default``); the app needs
``Machine.Read.All`` and ``Machine.Isolate``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from connectors.errors import ConnectorError, NotFound
from connectors.http import ConnectorClient
from connectors.base import ResponderError
from soc_agent.types import ProposedAction

_LIVE = {"Pending", "InProgress", "Succeeded"}


class DefenderResponder:
    """Carries out ``edr.isolate`` (``isolate_host``; rollback ``release_host``)."""

    capabilities = frozenset({"edr.isolate"})

    def __init__(self, client: ConnectorClient, *, name: str = "defender", isolation_type: str = "Full") -> None:
        self.name = name
        self.client = client
        self.isolation_type = isolation_type

    def _machine(self, action: ProposedAction) -> str:
        if action.target is None:
            raise ResponderError(f"{self.name}: {action.name} needs a host target")
        host = action.target.value
        if "'" in host:
            raise ResponderError(f"{self.name}: refusing host name with a quote")  # OData filter injection
        body = self.client.call("GET", "/api/machines", params={"$filter": f"computerDnsName eq '{host}'"},
                                permission="Machine.Read.All")
        machines = [m for m in body.get("value") or [] if isinstance(m, dict) and m.get("id")]
        if not machines:
            raise NotFound(self.name, f"no Defender machine is named {host}")
        if len(machines) > 1:
            raise ResponderError(f"{self.name}: {len(machines)} machines are named {host}; refusing to guess")
        return str(machines[0]["id"])

    def _isolated(self, machine_id: str) -> bool:
        body = self.client.call("GET", "/api/machineactions", permission="Machine.Read.All", params={
            "$filter": f"machineId eq '{machine_id}' and (type eq 'Isolate' or type eq 'Unisolate')",
            "$orderby": "creationDateTimeUtc desc", "$top": "5"})
        actions = [a for a in body.get("value") or [] if isinstance(a, dict) and a.get("status") in _LIVE]
        actions.sort(key=lambda a: str(a.get("creationDateTimeUtc", "")), reverse=True)
        return bool(actions) and actions[0].get("type") == "Isolate"

    def execute(self, action: ProposedAction, case_id: str, action_id: int, now: datetime) -> dict[str, Any]:
        """Isolate the machine unless it already is."""
        if action.name != "isolate_host":
            raise ResponderError(f"{self.name} cannot run {action.name}")
        machine_id = self._machine(action)
        if self._isolated(machine_id):
            return {"host": action.target.value, "machine_id": machine_id, "already_active": True}
        result = self.client.call("POST", f"/api/machines/{machine_id}/isolate", permission="Machine.Isolate",
                                  json={"Comment": f"soc-agent case {case_id}", "IsolationType": self.isolation_type})
        return {"host": action.target.value, "machine_id": machine_id, "machine_action_id": result.get("id"),
                "status": result.get("status")}

    def verify(self, action: ProposedAction) -> bool:
        """True when the newest isolation action is an Isolate that has not failed."""
        try:
            return self._isolated(self._machine(action))
        except ConnectorError:
            return False

    def rollback(self, action: ProposedAction, case_id: str, now: datetime) -> dict[str, Any]:
        """Release the machine from isolation (``release_host``)."""
        if action.name != "isolate_host":
            raise ResponderError(f"{self.name}: {action.name} has no rollback here")
        machine_id = self._machine(action)
        if not self._isolated(machine_id):
            return {"host": action.target.value, "machine_id": machine_id, "already_lifted": True}
        result = self.client.call("POST", f"/api/machines/{machine_id}/unisolate", permission="Machine.Isolate",
                                  json={"Comment": f"soc-agent rollback for case {case_id}"})
        return {"host": action.target.value, "machine_id": machine_id, "machine_action_id": result.get("id"),
                "lifted": True}

    def expire(self, now: datetime) -> list[tuple[str, str, int | None]]:
        """Isolation has no TTL."""
        return []
