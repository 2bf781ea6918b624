"""Build the configured enrichers and responders from the connectors file.

The file (``SOC_AGENT_CONNECTORS`` names it; unset means only the local
defaults) is YAML::

    secrets_file: /etc/soc-agent/secrets.yml   # optional; SOC_AGENT_SECRETS_FILE wins
    connectors:
      okta:                          # a name of your choice; the vendor is `type` (default: the name)
        type: okta
        enabled: true
        base_url: https://acme.okta.com
        auth: {type: header, prefix: SSWS, secret: OKTA_API_TOKEN}
        enrich: true                 # add its enricher (vendors that have one)
        grant: [idp.disable_user]    # capabilities its responder may use; [] = no responder
        poll: false                  # poll its alert API (vendors with a source; `soc-agent poll`)
        options: {privileged_groups: [Domain Admins]}
        timeout_s: 10

Polled alert sources are connectors with ``poll: true``: ``elastic``
(alerts index ``_search``), ``splunk`` (notable search export), ``sentinel``
(Microsoft Graph ``security/alerts_v2``) and ``crowdstrike`` (Alerts API v2).
Their ``options`` go to the source class (``page_size``, ``lookback_minutes``
and per-vendor filters; see each vendor's ``client.py``)::

      falcon:
        type: crowdstrike
        base_url: https://api.crowdstrike.com
        auth: {type: oauth2, token_url: https://api.crowdstrike.com/oauth2/token,
               client_id: 0123abcd, secret: FALCON_CLIENT_SECRET}
        poll: true
        grant: [edr.contain_host]    # the same entry may also respond
        options: {page_size: 500, lookback_minutes: 30}

The local kernel firewall needs no URL: ``nftables: {grant: [firewall.block],
options: {table: soc_agent, netns: null}}`` blocks through an nftables set
whose elements expire by themselves.

``auth.type`` is ``none``, ``bearer``, ``basic`` (``username`` +
``secret``), ``header`` (``header``, ``prefix``, ``secret``) or ``oauth2``
(``token_url``, ``client_id``, ``secret``, ``scope``). ``secret`` and every
option ending in ``_secret`` are secret *names* (UPPER_SNAKE), looked up in
the environment or the secrets file, never values.

Least privilege: a responder is exposed with only the capabilities in its
``grant`` (a grant the vendor cannot do is a config error), and refuses
any action outside them even if asked directly.
"""

from __future__ import annotations

import importlib
import inspect
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Literal

from pydantic import BaseModel, ConfigDict, Field

from connectors.errors import ConfigError
from connectors.http import AuthConfig, ConnectorClient, HttpConfig, make_client
from connectors.secrets import SecretStore
from connectors.base import Responder, ResponderError
from soc_agent import config_file
from soc_agent.config_file import read_yaml
from soc_agent.types import ProposedAction

__all__ = [
    "CONNECTORS_ENV", "ConnectorSpec", "ConnectorsConfig", "GrantedResponder", "build_enrichers",
    "build_responders", "build_sources", "configured_connectors", "configured_sources", "load_connectors_config",
]

CONNECTORS_ENV = "SOC_AGENT_CONNECTORS"
"""Environment variable naming the connectors file."""

_SECRET_NAME = r"^[A-Z][A-Z0-9_]*$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AuthSpec(_Strict):
    """How to authenticate; ``secret`` is the *name* of a secret."""

    type: Literal["none", "bearer", "basic", "header", "oauth2"] = "none"
    secret: str | None = Field(default=None, pattern=_SECRET_NAME)
    username: str | None = None
    header: str = "Authorization"
    prefix: str = ""
    token_url: str | None = None
    client_id: str | None = None
    scope: str | None = None


class ConnectorSpec(_Strict):
    """One connector entry of the file."""

    type: str | None = None
    enabled: bool = True
    base_url: str = ""
    auth: AuthSpec = Field(default_factory=AuthSpec)
    enrich: bool = False
    grant: list[str] = Field(default_factory=list)
    poll: bool = False
    """Poll the vendor's alert API (``soc-agent poll``); only vendors with an alert source."""
    options: dict[str, Any] = Field(default_factory=dict)
    timeout_s: float = Field(default=10.0, gt=0, le=120)
    verify_tls: bool = True
    max_attempts: int = Field(default=4, ge=1, le=10)


class ConnectorsConfig(_Strict):
    """The whole connectors file."""

    secrets_file: str | None = None
    connectors: dict[str, ConnectorSpec] = Field(default_factory=dict)
    source: str = Field(default="<memory>", exclude=True)
    """The file it came from, for error messages."""


@dataclass(frozen=True)
class _Vendor:
    """Where a vendor's classes live, as ``module:Class``; imported only when a connector uses them."""

    enricher: str | None = None
    responder: str | None = None
    source: str | None = None

    def load(self, role: Role) -> type | None:
        """The vendor's class for ``role`` (enricher, responder or source), None when it has none."""
        where = getattr(self, role)
        if where is None:
            return None
        module, _, name = where.partition(":")
        return getattr(importlib.import_module(module), name)


Role = Literal["enricher", "responder", "source"]

# Imports are deferred so a vendor module's bug cannot break unrelated connectors.
VENDORS: dict[str, _Vendor] = {
    "cmdb": _Vendor(enricher="connectors.cmdb:CmdbEnricher"),
    "crowdstrike": _Vendor(responder="connectors.crowdstrike.responder:CrowdStrikeResponder",
                           source="connectors.crowdstrike.client:FalconAlertSource"),
    "defender": _Vendor(responder="connectors.defender:DefenderResponder"),
    "elastic": _Vendor(source="connectors.elastic.client:ElasticAlertSource"),
    "entra": _Vendor(enricher="connectors.entra:EntraEnricher", responder="connectors.entra:EntraResponder"),
    "jira": _Vendor(responder="connectors.jira:JiraResponder"),
    "misp": _Vendor(enricher="connectors.misp:MispEnricher"),
    "nftables": _Vendor(responder="connectors.nftables.responder:ConfiguredNftables"),
    "okta": _Vendor(enricher="connectors.okta:OktaEnricher", responder="connectors.okta:OktaResponder"),
    "sentinel": _Vendor(source="connectors.sentinel.client:GraphAlertSource"),
    "servicenow": _Vendor(responder="connectors.servicenow:ServiceNowResponder"),
    "splunk": _Vendor(source="connectors.splunk.client:SplunkNotableSource"),
    "stix": _Vendor(enricher="connectors.stix:StixEnricher"),
    "thehive": _Vendor(responder="connectors.thehive:TheHiveResponder"),
    "webhook": _Vendor(responder="connectors.webhook:WebhookResponder"),
}
"""Vendor type → its enricher, responder and alert source classes."""


class _FileProblem(config_file.ConfigError):
    """A problem in the connectors file, raised on as the connectors' ``ConfigError`` (connector "loader")."""


def load_connectors_config(path: Path) -> ConnectorsConfig:
    """Read and validate the connectors file; errors name the file and the entry."""
    try:
        doc = read_yaml(path, _FileProblem)
        config = doc.validate(ConnectorsConfig, data=doc.mapping())
        for name, spec in config.connectors.items():
            vendor = spec.type or name
            if vendor not in VENDORS:
                raise doc.fail(("connectors", name, "type") if spec.type else ("connectors", name),
                               f"unknown type {vendor!r}; known: {', '.join(sorted(VENDORS))}")
    except _FileProblem as exc:
        # pydantic's message, never its input: the input could be a pasted token.
        raise ConfigError("loader", str(exc), file=exc.file, line=exc.line) from None
    config.source = str(path)
    return config


def _client(name: str, spec: ConnectorSpec, secrets: SecretStore,
            transport: Any = None) -> ConnectorClient | None:
    if not spec.base_url:
        return None
    auth = spec.auth
    http = HttpConfig(
        connector=name, base_url=spec.base_url, timeout_s=spec.timeout_s, verify_tls=spec.verify_tls,
        max_attempts=spec.max_attempts,
        auth=AuthConfig(type=auth.type, secret=secrets.get(auth.secret) if auth.secret else None,
                        username=auth.username, header=auth.header, prefix=auth.prefix, token_url=auth.token_url,
                        client_id=auth.client_id, scope=auth.scope),
    )
    return make_client(http, transport)


def _options(name: str, spec: ConnectorSpec, secrets: SecretStore) -> dict[str, Any]:
    options = {}
    for key, value in spec.options.items():
        if key.endswith("_secret"):
            if not isinstance(value, str):
                raise ConfigError(name, f"options.{key} must name a secret")
            value = secrets.get(value)
        options[key] = value
    return {**options, "name": name}


def _accepts(cls: type) -> set[str]:
    return {p.name for p in inspect.signature(cls).parameters.values() if p.kind is p.KEYWORD_ONLY}


def _construct(cls: type, vendor: _Vendor, name: str, client: ConnectorClient | None,
               options: dict[str, Any]) -> Any:
    # One `options` block serves a vendor's enricher, responder and source: each takes the keys it
    # declares, and a key neither declares is a typo worth failing on.
    known = set().union(*(_accepts(c) for role in ("enricher", "responder", "source")
                          if (c := vendor.load(role)) is not None))
    unknown = sorted(set(options) - known)
    if unknown:
        raise ConfigError(name, f"unknown options {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    mine = _accepts(cls)
    try:
        return cls(client, **{k: v for k, v in options.items() if k in mine})
    except TypeError as exc:
        raise ConfigError(name, f"bad options for {cls.__name__}: {exc}") from None


_MISSING = {"enricher": "has no enricher", "responder": "has no responder",
            "source": "has no alert source to poll"}


def _enabled(config: ConnectorsConfig, role: Role, wanted: Callable[[ConnectorSpec], bool]):
    """(name, spec, vendor, class) of each enabled connector ``wanted`` for ``role``; a vendor without one fails."""
    for name, spec in config.connectors.items():
        if not spec.enabled or not wanted(spec):
            continue
        vendor = VENDORS[spec.type or name]
        cls = vendor.load(role)
        if cls is None:
            message = f"{config.source}: {spec.type or name} {_MISSING[role]}"
            if role == "source":
                message += "; pollable: " + ", ".join(sorted(v for v, known in VENDORS.items() if known.source))
            raise ConfigError(name, message)
        yield name, spec, vendor, cls


def _secrets(config: ConnectorsConfig, secrets: SecretStore | None) -> SecretStore:
    if secrets is not None:
        return secrets
    return SecretStore.from_environment(Path(config.secrets_file) if config.secrets_file else None)


def build_enrichers(config: ConnectorsConfig, secrets: SecretStore | None = None,
                    transport: Any = None) -> list:
    """The enrichers of enabled connectors with ``enrich: true``."""
    secrets = _secrets(config, secrets)
    return [_construct(cls, vendor, name, _client(name, spec, secrets, transport), _options(name, spec, secrets))
            for name, spec, vendor, cls in _enabled(config, "enricher", lambda spec: spec.enrich)]


class GrantedResponder:
    """A responder narrowed to the capabilities the config grants it."""

    def __init__(self, inner: Responder, granted: frozenset[str]) -> None:
        self.inner = inner
        self.name = inner.name
        self.capabilities = frozenset(inner.capabilities & granted)
        # Posting the agent's notes to a linked ticket is commenting, so it needs case.annotate like
        # annotate_case does; without that grant the ticket sink does not see this responder at all.
        self.provider = getattr(inner, "provider", None) if "case.annotate" in self.capabilities else None

    def _check(self, action: ProposedAction) -> None:
        if action.capability not in self.capabilities:
            raise ResponderError(f"{self.name}: capability {action.capability} is not granted")

    def execute(self, action: ProposedAction, case_id: str, action_id: int, now: datetime) -> dict[str, Any]:
        """Run a granted action."""
        self._check(action)
        return self.inner.execute(action, case_id, action_id, now)

    def verify(self, action: ProposedAction) -> bool:
        """Verify a granted action."""
        return action.capability in self.capabilities and self.inner.verify(action)

    def rollback(self, action: ProposedAction, case_id: str, now: datetime) -> dict[str, Any]:
        """Undo a granted action."""
        self._check(action)
        return self.inner.rollback(action, case_id, now)

    def expire(self, now: datetime) -> list[tuple[str, str, int | None]]:
        """Lift the responder's due effects."""
        return self.inner.expire(now)

    def post_to_ticket(self, ticket_id: str, body: str) -> None:
        """Comment on a linked ticket, when case.annotate is granted and the responder can."""
        if self.provider is None or not hasattr(self.inner, "post_to_ticket"):
            raise ResponderError(f"{self.name}: capability case.annotate is not granted")
        self.inner.post_to_ticket(ticket_id, body)

    def __repr__(self) -> str:
        return f"GrantedResponder({self.name!r}, {sorted(self.capabilities)!r})"


def build_responders(config: ConnectorsConfig, secrets: SecretStore | None = None,
                     transport: Any = None) -> list[Responder]:
    """The responders of enabled connectors with a non-empty ``grant``, narrowed to it."""
    secrets = _secrets(config, secrets)
    built: list[Responder] = []
    for name, spec, vendor, cls in _enabled(config, "responder", lambda spec: bool(spec.grant)):
        inner = _construct(cls, vendor, name, _client(name, spec, secrets, transport), _options(name, spec, secrets))
        extra = set(spec.grant) - inner.capabilities
        if extra:
            raise ConfigError(name, f"{config.source}: grant lists {', '.join(sorted(extra))}, which "
                              f"{spec.type or name} does not implement ({', '.join(sorted(inner.capabilities))})")
        built.append(GrantedResponder(inner, frozenset(spec.grant)))
    return built


def build_sources(config: ConnectorsConfig, secrets: SecretStore | None = None,
                  transport: Any = None) -> list:
    """The alert sources (``connectors.base.AlertSource``) of enabled connectors with ``poll: true``."""
    secrets = _secrets(config, secrets)
    built = []
    for name, spec, vendor, cls in _enabled(config, "source", lambda spec: spec.poll):
        client = _client(name, spec, secrets, transport)
        if client is None:
            raise ConfigError(name, f"{config.source}: poll needs a base_url")
        built.append(_construct(cls, vendor, name, client, _options(name, spec, secrets)))
    return built


def configured_sources(environ: dict[str, str] | None = None) -> list:
    """The alert sources from ``$SOC_AGENT_CONNECTORS``; empty when it is unset."""
    path = (os.environ if environ is None else environ).get(CONNECTORS_ENV)
    if not path:
        return []
    config = load_connectors_config(Path(path))
    return build_sources(config, _secrets(config, None))


def configured_connectors(environ: dict[str, str] | None = None) -> tuple[list, list[Responder]]:
    """(enrichers, responders) from ``$SOC_AGENT_CONNECTORS``; two empty lists when it is unset."""
    path = (os.environ if environ is None else environ).get(CONNECTORS_ENV)
    if not path:
        return [], []
    config = load_connectors_config(Path(path))
    secrets = _secrets(config, None)
    return build_enrichers(config, secrets), build_responders(config, secrets)
