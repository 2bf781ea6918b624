"""Okta identity enricher: the user's profile, groups and admin roles.

Role (contractor / employee / executive / service) comes from the profile's
``userType`` through ``user_types``, else from group membership through
``group_roles``; privileged means any admin role or a group listed in
``privileged_groups``. The evidence ``data`` has the local identity
directory's keys (``user``, ``role``, ``privileged``, ``department``) so the
guard can read either source the same way.
"""

from __future__ import annotations

from urllib.parse import quote

from connectors.errors import NotFound
from connectors.http import ConnectorClient, paginate_link
from soc_agent.types import Entity, EntityKind, Evidence, IdentityRole
from soc_agent.wording import a_or_an

_DEFAULT_USER_TYPES = {"contractor": "contractor", "employee": "employee", "executive": "executive",
                       "service": "service", "serviceaccount": "service"}


def resolve_role(candidates: list[str], table: dict[str, str],
                 default: IdentityRole | None = None) -> IdentityRole | None:
    """The first candidate the table maps to a role (case-insensitive), else ``default``."""
    lowered = {k.lower(): v for k, v in table.items()}
    for candidate in candidates:
        role = lowered.get((candidate or "").lower())
        if role:
            return IdentityRole(role)
    return default


class OktaEnricher:
    """Looks a user up in Okta (API token needs ``okta.users.read`` and ``okta.roles.read``)."""

    kinds = frozenset({EntityKind.USER})

    def __init__(self, client: ConnectorClient, *, name: str = "okta", user_types: dict[str, str] | None = None,
                 group_roles: dict[str, str] | None = None, privileged_groups: list[str] | None = None,
                 default_role: str = "employee") -> None:
        self.name = name
        self.client = client
        self.user_types = {**_DEFAULT_USER_TYPES, **(user_types or {})}
        self.group_roles = group_roles or {}
        self.privileged_groups = {g.lower() for g in privileged_groups or []}
        self.default_role = IdentityRole(default_role)

    def lookup(self, entity: Entity, rules: frozenset[str]) -> list[Evidence]:
        """Identity evidence for a user, or nothing when Okta does not know it."""
        try:
            user = self.client.call("GET", f"/api/v1/users/{quote(entity.value, safe='@')}",
                                    permission="okta.users.read")
        except NotFound:
            return []
        user_id = str(user.get("id", ""))
        profile = user.get("profile") if isinstance(user.get("profile"), dict) else {}
        groups = [g.get("profile", {}).get("name", "") for g in paginate_link(
            self.client, f"/api/v1/users/{user_id}/groups", params={"limit": 200}, permission="okta.groups.read")
            if isinstance(g, dict)]
        roles = [r.get("type", "") for r in self.client.call(
            "GET", f"/api/v1/users/{user_id}/roles", permission="okta.roles.read", shape=list) if isinstance(r, dict)]
        role = (resolve_role([str(profile.get("userType") or "")], self.user_types)
                or resolve_role(groups, self.group_roles, self.default_role))
        privileged = bool(roles) or any(g.lower() in self.privileged_groups for g in groups)
        login = str(profile.get("login") or entity.value).lower()
        department = str(profile.get("department") or "")
        label = "privileged " if privileged else ""
        return [Evidence(
            id=f"identity:{entity.key}", kind="identity", source=self.name,
            summary=f"{entity.key} is {a_or_an(label + str(role))} in Okta ({department or 'no department'}, "
            f"status {user.get('status', 'unknown')})",
            data={"user": login, "role": str(role), "privileged": privileged, "department": department,
                  "status": user.get("status"), "groups": groups, "admin_roles": roles, "okta_id": user_id},
        )]
