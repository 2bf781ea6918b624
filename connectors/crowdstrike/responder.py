"""CrowdStrike Falcon responder: network-contain a host and lift containment.

Host name → device id through ``GET /devices/queries/devices/v1`` with an
FQL ``hostname`` filter; then ``POST /devices/entities/devices-actions/v2``
with ``action_name=contain`` or ``lift_containment``. Auth is OAuth2 client
credentials against ``/oauth2/token``; the API client needs the
``Hosts: Read`` and ``Hosts: Write`` scopes. Import this module by its full
path (``connectors.crowdstrike.responder``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from connectors.errors import ConnectorError, NotFound
from connectors.http import ConnectorClient
from connectors.base import ResponderError
from soc_agent.types import ProposedAction

_CONTAINED = {"contained", "containment_pending"}


class CrowdStrikeResponder:
    """Carries out ``edr.isolate`` (``isolate_host``; rollback ``release_host``)."""

    capabilities = frozenset({"edr.isolate"})

    def __init__(self, client: ConnectorClient, *, name: str = "crowdstrike") -> None:
        self.name = name
        self.client = client

    def _device(self, action: ProposedAction) -> str:
        if action.target is None:
            raise ResponderError(f"{self.name}: {action.name} needs a host target")
        host = action.target.value
        if "'" in host or "\\" in host:
            raise ResponderError(f"{self.name}: refusing host name with quote characters")  # FQL injection
        body = self.client.call("GET", "/devices/queries/devices/v1", params={"filter": f"hostname:'{host}'"},
                                permission="Hosts: Read")
        ids = body.get("resources") or []
        if not isinstance(ids, list) or not ids:
            raise NotFound(self.name, f"no Falcon device is named {host}")
        if len(ids) > 1:
            # Containing the wrong machine is worse than not acting: make a person pick.
            raise ResponderError(f"{self.name}: {len(ids)} Falcon devices are named {host}; refusing to guess")
        return str(ids[0])

    def _status(self, device_id: str) -> str:
        body = self.client.call("GET", "/devices/entities/devices/v2", params={"ids": device_id},
                                permission="Hosts: Read")
        devices = body.get("resources") or []
        return str(devices[0].get("status", "")) if devices and isinstance(devices[0], dict) else ""

    def _act(self, device_id: str, action_name: str) -> None:
        self.client.call("POST", "/devices/entities/devices-actions/v2", params={"action_name": action_name},
                         json={"ids": [device_id]}, permission="Hosts: Write")

    def execute(self, action: ProposedAction, case_id: str, action_id: int, now: datetime) -> dict[str, Any]:
        """Contain the host unless it already is."""
        if action.name != "isolate_host":
            raise ResponderError(f"{self.name} cannot run {action.name}")
        device_id = self._device(action)
        if self._status(device_id) in _CONTAINED:
            return {"host": action.target.value, "device_id": device_id, "already_active": True}
        self._act(device_id, "contain")
        return {"host": action.target.value, "device_id": device_id, "status": "containment_pending"}

    def verify(self, action: ProposedAction) -> bool:
        """True when Falcon reports the host contained (or containment pending)."""
        try:
            return self._status(self._device(action)) in _CONTAINED
        except ConnectorError:
            return False

    def rollback(self, action: ProposedAction, case_id: str, now: datetime) -> dict[str, Any]:
        """Lift containment (``release_host``)."""
        if action.name != "isolate_host":
            raise ResponderError(f"{self.name}: {action.name} has no rollback here")
        device_id = self._device(action)
        if self._status(device_id) not in _CONTAINED:
            return {"host": action.target.value, "device_id": device_id, "already_lifted": True}
        self._act(device_id, "lift_containment")
        return {"host": action.target.value, "device_id": device_id, "lifted": True}

    def expire(self, now: datetime) -> list[tuple[str, str, int | None]]:
        """Containment has no TTL."""
        return []
