"""CMDB enricher: an asset's criticality tier, owner and environment.

Two API shapes (``options.api``):

* ``simple`` (default): ``GET /api/assets?host=<name>`` or ``?ip=<addr>``
  answering ``{"assets": [{"host", "ip", "criticality_tier" (0-3), "owner",
  "environment", "tags"}]}``: the documented shape for a home-grown inventory.
* ``servicenow``: ``GET /api/now/table/<table>`` (default
  ``cmdb_ci_computer``) with ``sysparm_query=name=<host>`` or
  ``ip_address=<ip>``; ``business_criticality`` ("1 - most critical" ..
  "4 - not critical") becomes tier 0..3. Needs the ``cmdb_read`` role.

The evidence ``data`` has the local inventory's keys (``host``, ``ip``,
``criticality_tier``, ``owner``, ``environment``, ``tags``).
"""

from __future__ import annotations

from typing import Any

from connectors.errors import BadResponse, ConfigError, NotFound
from connectors.http import ConnectorClient
from soc_agent.types import Entity, EntityKind, Evidence

_FIELDS = "name,ip_address,business_criticality,owned_by,environment,sys_class_name"


def _tier_from_servicenow(value: Any) -> int:
    # "1 - most critical" -> 0 ... "4 - not critical" -> 3; unknown counts as least critical.
    text = str(value.get("value") if isinstance(value, dict) else value or "").strip()
    return min(max(int(text[0]) - 1, 0), 3) if text[:1].isdigit() else 3


def _display(value: Any) -> str:
    if isinstance(value, dict):  # ServiceNow reference fields: {"link", "value"} or display values
        return str(value.get("display_value") or value.get("value") or "")
    return str(value or "")


class CmdbEnricher:
    """Asset evidence for hosts and addresses."""

    kinds = frozenset({EntityKind.HOST, EntityKind.IP})

    def __init__(self, client: ConnectorClient, *, name: str = "cmdb", api: str = "simple",
                 table: str = "cmdb_ci_computer") -> None:
        if api not in ("simple", "servicenow"):
            raise ConfigError(name, f"options.api must be simple or servicenow, not {api!r}")
        self.name = name
        self.client = client
        self.api = api
        self.table = table

    def _simple(self, entity: Entity) -> dict | None:
        key = "ip" if entity.kind is EntityKind.IP else "host"
        body = self.client.call("GET", "/api/assets", params={key: entity.value}, permission="assets:read")
        assets = body.get("assets")
        if not isinstance(assets, list):
            raise BadResponse(self.name, "GET /api/assets did not return an assets list")
        asset = next((a for a in assets if isinstance(a, dict)), None)
        if asset is None:
            return None
        tier = asset.get("criticality_tier")
        if not isinstance(tier, int) or isinstance(tier, bool) or not 0 <= tier <= 3:
            raise BadResponse(self.name, "asset criticality_tier must be an integer 0-3")
        return {"host": str(asset.get("host") or entity.value).lower(), "ip": asset.get("ip"),
                "criticality_tier": tier, "owner": str(asset.get("owner") or ""),
                "environment": str(asset.get("environment") or ""),
                "tags": [str(t) for t in asset.get("tags") or [] if isinstance(t, (str, int))]}

    def _servicenow(self, entity: Entity) -> dict | None:
        field = "ip_address" if entity.kind is EntityKind.IP else "name"
        # ServiceNow encoded queries use ^ as a separator: refuse it rather than let a value add clauses.
        if "^" in entity.value:
            return None
        body = self.client.call("GET", f"/api/now/table/{self.table}", permission="cmdb_read", params={
            "sysparm_query": f"{field}={entity.value}", "sysparm_limit": "1", "sysparm_fields": _FIELDS,
            "sysparm_display_value": "false", "sysparm_exclude_reference_link": "true"})
        rows = body.get("result")
        if not isinstance(rows, list):
            raise BadResponse(self.name, f"GET /api/now/table/{self.table} did not return a result list")
        row = next((r for r in rows if isinstance(r, dict)), None)
        if row is None:
            return None
        return {"host": _display(row.get("name")).lower() or entity.value,
                "ip": _display(row.get("ip_address")) or None,
                "criticality_tier": _tier_from_servicenow(row.get("business_criticality")),
                "owner": _display(row.get("owned_by")), "environment": _display(row.get("environment")),
                "tags": [_display(row.get("sys_class_name"))] if row.get("sys_class_name") else []}

    def lookup(self, entity: Entity, rules: frozenset[str]) -> list[Evidence]:
        """Asset evidence, or nothing when the inventory does not know the entity."""
        try:
            asset = self._simple(entity) if self.api == "simple" else self._servicenow(entity)
        except NotFound:
            return []
        if asset is None:
            return []
        return [Evidence(
            id=f"asset:{entity.key}", kind="asset", source=self.name,
            summary=f"{entity.key} is {asset['host']} (tier {asset['criticality_tier']}, "
            f"{asset['environment'] or 'unknown environment'}, owner {asset['owner'] or 'unknown'})",
            data=asset,
        )]
