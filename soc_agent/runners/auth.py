"""API tokens → identity and role.

The tokens file (``$SOC_AGENT_TOKENS_FILE``) holds only SHA-256 hashes of
tokens, never the tokens themselves::

    tokens:
      - name: ana.lead        # the identity the audit records
        role: lead            # viewer | analyst | lead | platform
        tenant: acme          # optional: the tenant this identity acts for
        sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08

``tenant`` scopes what an identity may change on the edge's shared watchlist
(``soc_agent.runners.edge_api``): a lead writes entries only its own tenant's
sensors see, and an identity without a tenant writes none. ``platform`` (the
provider's operators) ranks above lead and may write entries for every tenant.

Make a hash with ``printf %s "$TOKEN" | sha256sum`` or :func:`hash_token`.
Comparison is constant-time (``hmac.compare_digest``) against every entry,
so the time taken does not depend on which entry (if any) matched.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
from dataclasses import dataclass
from pathlib import Path

from soc_agent.config_file import ConfigError, read_yaml

from soc_agent.wording import a_or_an


class Role(enum.StrEnum):
    """What a token may do: viewers read, analysts decide, leads decide everything (for their tenant).

    ``platform``: the provider's operators, a lead whose edge decisions may reach every tenant.
    """

    VIEWER = "viewer"
    ANALYST = "analyst"
    LEAD = "lead"
    PLATFORM = "platform"

    @property
    def rank(self) -> int:
        """0 (viewer) to 3 (platform), for comparisons."""
        return list(Role).index(self)


@dataclass(frozen=True)
class Identity:
    """Who is calling, as the tokens file names them."""

    name: str
    role: Role
    tenant: str | None = None
    """The tenant this identity acts for; None: no tenant (no tenant-scoped writes)."""

    def at_least(self, role: Role) -> bool:
        """True when this identity's role is ``role`` or higher."""
        return self.role.rank >= role.rank


class TokenFileError(ConfigError):
    """The tokens file is missing, malformed or holds something other than hashes; names ``file:line``."""


def hash_token(token: str) -> str:
    """The hex SHA-256 the tokens file stores for ``token``."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class TokenStore:
    """The identities allowed to call the API, keyed by token hash."""

    def __init__(self, entries: list[tuple[str, Identity]]) -> None:
        self._entries = [(bytes.fromhex(digest), identity) for digest, identity in entries]

    @classmethod
    def from_file(cls, path: Path | str | None) -> "TokenStore":
        """Load a tokens file; no path means no one can authenticate."""
        if not path:
            return cls([])
        doc = read_yaml(path, TokenFileError)
        tokens = doc.mapping().get("tokens") or []
        if not isinstance(tokens, list):
            raise doc.fail(("tokens",), "expected a list of token entries")
        entries = []
        for index, item in enumerate(tokens):
            try:
                digest = str(item["sha256"]).lower()
                if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
                    raise ValueError("sha256 must be 64 hex characters (store the hash, never the token)")
                tenant = item.get("tenant")
                entries.append((digest, Identity(name=str(item["name"]), role=Role(item["role"]),
                                                 tenant=str(tenant) if tenant else None)))
            except KeyError as exc:
                raise doc.error.at(doc.file, doc.line_of(("tokens", index)),
                                   f"token entry {index + 1}: missing {exc}") from None
            except (TypeError, ValueError) as exc:
                raise doc.error.at(doc.file, doc.line_of(("tokens", index)),
                                   f"token entry {index + 1}: {exc}") from None
        return cls(entries)

    def authenticate(self, token: str | None) -> Identity | None:
        """The identity holding ``token``, or None; constant time over all entries."""
        if not token:
            return None
        presented = hashlib.sha256(token.encode("utf-8")).digest()
        found = None
        for digest, identity in self._entries:
            if hmac.compare_digest(presented, digest) and found is None:
                found = identity
        return found


def bearer_identity(tokens: TokenStore, authorization: str | None, role: Role | None = None) -> Identity:
    """The identity an ``Authorization: Bearer`` header names, at least ``role``; HTTP 401/403 otherwise.

    The one check every JSON API of the server (approvals, cases, edge lists) and the decision point share.
    """
    from fastapi import HTTPException  # deferred: the CLI imports this module (tokens) without fastapi

    header = authorization or ""
    who = tokens.authenticate(header[7:].strip() if header[:7].lower() == "bearer " else None)
    if who is None:
        raise HTTPException(401, "missing or unknown token", headers={"WWW-Authenticate": "Bearer"})
    if role is not None and not who.at_least(role):
        raise HTTPException(403, f"{who.name} is {a_or_an(str(who.role))}; this needs {role} or higher")
    return who
