"""Entra ID identity enricher over Microsoft Graph v1.0.

Role comes from ``employeeType`` (then ``userType``: a Guest is a
contractor unless mapped otherwise) through ``employee_types``; privileged
means the user holds any directory role (transitively, through groups).
Needs ``User.Read.All`` and ``RoleManagement.Read.Directory``.
"""

from __future__ import annotations

from urllib.parse import quote

from connectors.errors import NotFound
from connectors.http import ConnectorClient, paginate_odata
from connectors.okta.enricher import resolve_role
from soc_agent.types import Entity, EntityKind, Evidence, IdentityRole
from soc_agent.wording import a_or_an

_SELECT = "id,userPrincipalName,userType,employeeType,jobTitle,department,accountEnabled"
_DEFAULT_TYPES = {"contractor": "contractor", "employee": "employee", "executive": "executive",
                  "service": "service", "guest": "contractor", "member": "employee"}


class EntraEnricher:
    """Looks a user up in Entra ID (by UPN or object id)."""

    kinds = frozenset({EntityKind.USER})

    def __init__(self, client: ConnectorClient, *, name: str = "entra",
                 employee_types: dict[str, str] | None = None, privileged_roles: list[str] | None = None,
                 default_role: str = "employee") -> None:
        self.name = name
        self.client = client
        self.employee_types = {**_DEFAULT_TYPES, **(employee_types or {})}
        # None: any directory role is privileged; a list narrows it to those role names.
        self.privileged_roles = {r.lower() for r in privileged_roles} if privileged_roles else None
        self.default_role = IdentityRole(default_role)

    def lookup(self, entity: Entity, rules: frozenset[str]) -> list[Evidence]:
        """Identity evidence for a user, or nothing when the directory does not know it."""
        try:
            user = self.client.call("GET", f"/v1.0/users/{quote(entity.value, safe='@')}",
                                    params={"$select": _SELECT}, permission="User.Read.All")
        except NotFound:
            return []
        roles = [r.get("displayName", "") for r in paginate_odata(
            self.client, f"/v1.0/users/{user.get('id')}/transitiveMemberOf/microsoft.graph.directoryRole",
            params={"$select": "displayName,roleTemplateId"}, permission="RoleManagement.Read.Directory")
            if isinstance(r, dict)]
        role = resolve_role([str(user.get("employeeType") or ""), str(user.get("userType") or "")],
                            self.employee_types, self.default_role)
        if self.privileged_roles is None:
            privileged = bool(roles)
        else:
            privileged = any(r.lower() in self.privileged_roles for r in roles)
        upn = str(user.get("userPrincipalName") or entity.value).lower()
        department = str(user.get("department") or "")
        label = "privileged " if privileged else ""
        return [Evidence(
            id=f"identity:{entity.key}", kind="identity", source=self.name,
            summary=f"{entity.key} is {a_or_an(label + str(role))} in Entra ID ({department or 'no department'})",
            data={"user": upn, "role": str(role), "privileged": privileged, "department": department,
                  "account_enabled": user.get("accountEnabled"), "directory_roles": roles,
                  "entra_id": user.get("id")},
        )]
