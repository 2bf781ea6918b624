"""The one HTTP layer: every connector's client, retries, auth and error translation.

* ``make_client(config)`` builds an ``httpx.Client`` subclass with the base
  URL, timeouts, connection limits and auth (bearer, basic, API-key header,
  OAuth2 client credentials with a cached token).
* ``ConnectorClient.call()`` is the only way connectors talk HTTP. It runs
  the one retry policy (429, 5xx and transport errors; never other 4xx),
  decodes and shape-checks JSON, and translates failures into the
  ``ConnectorError`` tree inside ``translate_errors``, the one place that
  catches ``httpx`` exceptions.
* ``retrying()`` is that retry policy on its own, for a client that does
  not speak through ``ConnectorClient`` (the LLM client's SDK): inside an
  attempt it raises ``TransientFailure`` for what a fresh attempt may fix;
  the Retry-After hint (seconds or HTTP-date) is honoured, capped, here only.
* Pagination helpers for the vendors' schemes: Link headers (Okta), Graph
  ``@odata.nextLink``, page/limit (MISP), TAXII ``more``/``next``.

Tests make retries instant by patching the module-level ``sleep`` (to
record the waits asked for) and ``backoff``.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any, Literal

import httpx
import tenacity

from connectors.errors import (AuthError, BadResponse, ConfigError, ConnectorError, NotFound, RateLimited,
                               Unavailable)
from connectors.secrets import Secret

__all__ = [
    "AuthConfig", "ConnectorClient", "HttpConfig", "TransientFailure", "backoff", "make_client", "paginate_link",
    "paginate_odata", "paginate_pages", "paginate_taxii", "retry_after_seconds", "retryable_status", "retrying",
    "sleep", "translate_errors",
]

USER_AGENT = "soc-agent/0.1"
_MAX_PAGES = 200  # a runaway cursor must not loop forever

sleep: Callable[[float], None] = time.sleep
"""How the retry policy waits; tests replace it with a recorder."""

backoff: tenacity.wait.wait_base = tenacity.wait_exponential(multiplier=0.5, max=10.0) + tenacity.wait_random(0, 0.5)
"""Wait between attempts when the vendor gave no Retry-After hint."""


@dataclass(frozen=True)
class AuthConfig:
    """How a connector authenticates. ``secret`` is a ``Secret``, so the repr is safe.

    * ``bearer``: ``Authorization: Bearer <secret>``
    * ``basic``: ``username`` and password ``secret``
    * ``header``: ``<header>: <prefix> <secret>`` (Okta ``SSWS``, MISP's raw key)
    * ``oauth2``: client credentials against ``token_url`` with ``client_id``,
      client secret ``secret`` and an optional ``scope``; the token is cached
      until shortly before it expires and refreshed once on a 401.
    """

    type: Literal["none", "bearer", "basic", "header", "oauth2"] = "none"
    secret: Secret | None = None
    username: str | None = None
    header: str = "Authorization"
    prefix: str = ""
    token_url: str | None = None
    client_id: str | None = None
    scope: str | None = None


@dataclass(frozen=True)
class HttpConfig:
    """One connector's HTTP settings."""

    connector: str
    base_url: str
    auth: AuthConfig = field(default_factory=AuthConfig)
    timeout_s: float = 10.0
    connect_timeout_s: float = 5.0
    max_connections: int = 10
    max_keepalive: int = 5
    verify_tls: bool = True
    max_attempts: int = 4
    """Attempts per call, the first included, for 429 / 5xx / transport errors."""
    max_retry_after_s: float = 30.0
    """Cap on a vendor's Retry-After: a triage run waits at most this long per retry."""
    headers: tuple[tuple[str, str], ...] = ()


class TransientFailure(Exception):
    """Raised inside a ``retrying()`` attempt: a failure a fresh attempt may fix.

    ``response`` is the 429 / 5xx answer, whose wait hint ``retry_after`` (seconds) the policy honours;
    None when no answer came (a transport failure of a client library other than httpx: chain it).
    """

    def __init__(self, response: httpx.Response | None = None) -> None:
        super().__init__(response.status_code if response is not None else "no response")
        self.response = response
        self.retry_after = retry_after_seconds(response) if response is not None else None


# ---- internal signals, never seen outside this module ------------------------


class _TokenRejected(Exception):
    """The OAuth2 token endpoint refused the client credentials."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


# ---- auth --------------------------------------------------------------------


class _HeaderAuth(httpx.Auth):
    def __init__(self, header: str, value: str) -> None:
        self._header, self._value = header, value

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers[self._header] = self._value
        yield request


class _ClientCredentials(httpx.Auth):
    """OAuth2 client credentials; the token request goes through the same transport."""

    requires_response_body = True

    def __init__(self, token_url: str, client_id: str, secret: Secret, scope: str | None) -> None:
        self._token_url, self._client_id, self._secret, self._scope = token_url, client_id, secret, scope
        self._token: str | None = None
        self._expires = 0.0
        self._lock = threading.Lock()

    def _token_request(self) -> httpx.Request:
        form = {"grant_type": "client_credentials", "client_id": self._client_id,
                "client_secret": self._secret.reveal()}
        if self._scope:
            form["scope"] = self._scope
        return httpx.Request("POST", self._token_url, data=form, headers={"Accept": "application/json"})

    def _store(self, response: httpx.Response) -> None:
        if retryable_status(response.status_code):
            raise TransientFailure(response)
        if response.status_code >= 400:
            raise _TokenRejected(response.status_code)
        try:
            body = response.json()
            token, expires_in = body["access_token"], float(body.get("expires_in", 300))
        except (ValueError, KeyError, TypeError):
            raise _TokenRejected(response.status_code) from None
        # Refresh a minute early so a token never expires between check and use.
        self._token, self._expires = token, time.monotonic() + max(expires_in - 60.0, 1.0)

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        with self._lock:
            cached = self._token is not None and time.monotonic() < self._expires
        if not cached:
            self._store((yield self._token_request()))
        request.headers["Authorization"] = f"Bearer {self._token}"
        response = yield request
        if response.status_code == 401 and cached:
            # The vendor revoked the cached token early: fetch one fresh token, try once more.
            self._store((yield self._token_request()))
            request.headers["Authorization"] = f"Bearer {self._token}"
            yield request


def _auth(config: HttpConfig) -> httpx.Auth | None:
    auth = config.auth
    if auth.type == "none":
        return None
    if auth.secret is None:
        raise ConfigError(config.connector, f"auth type {auth.type} needs a secret")
    if auth.type == "bearer":
        return _HeaderAuth("Authorization", f"Bearer {auth.secret.reveal()}")
    if auth.type == "basic":
        return httpx.BasicAuth(auth.username or "", auth.secret.reveal())
    if auth.type == "header":
        value = f"{auth.prefix} {auth.secret.reveal()}" if auth.prefix else auth.secret.reveal()
        return _HeaderAuth(auth.header, value)
    if not auth.token_url or not auth.client_id:
        raise ConfigError(config.connector, "oauth2 auth needs token_url and client_id")
    return _ClientCredentials(auth.token_url, auth.client_id, auth.secret, auth.scope)


# ---- retries -------------------------------------------------------------------


def retry_after_seconds(response: httpx.Response, now: float | None = None) -> float | None:
    """The vendor's wait hint: Retry-After (seconds or HTTP-date), or an epoch reset header.

    Okta sends ``X-Rate-Limit-Reset`` and CrowdStrike ``X-RateLimit-RetryAfter``,
    both as epoch seconds, sometimes without a Retry-After.
    """
    now = time.time() if now is None else now
    value = response.headers.get("Retry-After")
    if value:
        value = value.strip()
        try:
            return max(float(value), 0.0)
        except ValueError:
            pass
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        return max((when - datetime.fromtimestamp(now, timezone.utc)).total_seconds(), 0.0)
    for name in ("X-RateLimit-RetryAfter", "X-Rate-Limit-Reset"):
        epoch = response.headers.get(name)
        if epoch:
            try:
                return max(float(epoch) - now, 0.0)
            except ValueError:
                return None
    return None


def retryable_status(status: int) -> bool:
    """Whether an answer with ``status`` is worth a fresh attempt: 429 and 5xx, never another 4xx."""
    return status == 429 or status >= 500


def _is_retryable(exc: BaseException) -> bool:
    # The one predicate: only what a fresh attempt can fix.
    return isinstance(exc, (TransientFailure, httpx.TransportError))


def _wait(cap: float) -> Callable[[tenacity.RetryCallState], float]:
    def wait(state: tenacity.RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, TransientFailure) and exc.retry_after is not None:
            return min(exc.retry_after, cap)
        return min(backoff(state), cap)
    return wait


def retrying(max_attempts: int, max_retry_after_s: float) -> tenacity.Retrying:
    """The one retry policy: ``TransientFailure`` and httpx transport errors, up to ``max_attempts`` attempts
    (the first included), waiting the answer's Retry-After (at most ``max_retry_after_s``) or ``backoff``;
    the last failure is re-raised. Built per call so that patched module-level ``sleep``/``backoff`` apply.
    """
    return tenacity.Retrying(
        retry=tenacity.retry_if_exception(_is_retryable),
        wait=_wait(max_retry_after_s),
        stop=tenacity.stop_after_attempt(max(max_attempts, 1)),
        sleep=lambda seconds: sleep(seconds),
        reraise=True,
    )


# ---- the error boundary ----------------------------------------------------------


def _where(request: httpx.Request | None) -> str:
    # Method and path only: query strings may carry keys or personal data.
    return f"{request.method} {request.url.path}" if request is not None else "request"


def _request_of(exc: httpx.HTTPError) -> httpx.Request | None:
    try:
        return exc.request
    except RuntimeError:
        return None


@contextmanager
def translate_errors(connector: str, permission: str | None = None) -> Iterator[None]:
    """Turn ``httpx`` and HTTP status failures into the ``ConnectorError`` tree.

    ``permission`` names what the call needs at the vendor (an Okta scope, a
    Graph permission, a CrowdStrike API scope) so a 401/403 says what to grant.
    Chained exceptions are dropped: their text may contain URLs with queries.
    """
    need = f"; it needs the {permission} permission" if permission else ""
    try:
        yield
    except ConnectorError:
        raise
    except _TokenRejected as exc:
        raise AuthError(connector, f"the token endpoint rejected the client credentials (HTTP {exc.status})",
                        status=exc.status, permission=permission) from None
    except TransientFailure as exc:
        if exc.response is None:
            raise Unavailable(connector, "request failed after retries") from None
        status, where = exc.response.status_code, _where(exc.response.request)
        if status == 429:
            raise RateLimited(connector, f"{where} still rate limited (HTTP 429) after retries",
                              status=429, retry_after=exc.retry_after) from None
        raise Unavailable(connector, f"{where} failed with HTTP {status} after retries", status=status) from None
    except httpx.HTTPStatusError as exc:
        status, where = exc.response.status_code, _where(exc.request)
        if status in (401, 403):
            what = "rejected the credentials" if status == 401 else "refused access"
            raise AuthError(connector, f"{where} {what} (HTTP {status}){need}",
                            status=status, permission=permission) from None
        if status == 404:
            raise NotFound(connector, f"{where} found nothing (HTTP 404)", status=404) from None
        raise ConnectorError(connector, f"{where} was rejected (HTTP {status})", status=status) from None
    except httpx.TimeoutException as exc:
        raise Unavailable(connector, f"{_where(_request_of(exc))} timed out") from None
    except httpx.TransportError as exc:
        raise Unavailable(connector, f"{_where(_request_of(exc))} failed: {type(exc).__name__}") from None
    except httpx.HTTPError as exc:
        raise ConnectorError(connector, f"HTTP error: {type(exc).__name__}") from None


# ---- the client -------------------------------------------------------------------


def _decode(response: httpx.Response, connector: str) -> Any:
    where, body = _where(response.request), response.content
    if not body.strip():
        return None
    ctype = response.headers.get("Content-Type", "").lower()
    # A proxy or SSO page answering 200 with HTML is a failure, not data.
    if "html" in ctype or body.lstrip()[:1] == b"<":
        raise BadResponse(connector, f"{where} returned an HTML page (HTTP {response.status_code}), not JSON",
                          status=response.status_code)
    try:
        return json.loads(body)
    except ValueError:
        raise BadResponse(connector, f"{where} returned truncated or malformed JSON",
                          status=response.status_code) from None


class ConnectorClient(httpx.Client):
    """An ``httpx.Client`` bound to one connector's config; use ``call()``."""

    def __init__(self, config: HttpConfig, transport: httpx.BaseTransport | None = None) -> None:
        super().__init__(
            base_url=config.base_url,
            timeout=httpx.Timeout(config.timeout_s, connect=config.connect_timeout_s),
            limits=httpx.Limits(max_connections=config.max_connections,
                                max_keepalive_connections=config.max_keepalive),
            auth=_auth(config),
            verify=config.verify_tls,
            headers={"User-Agent": USER_AGENT, "Accept": "application/json", **dict(config.headers)},
            transport=transport,
            follow_redirects=False,  # a redirect to a login page must not look like success
        )
        self.config = config

    @property
    def connector(self) -> str:
        """The connector name errors are reported under."""
        return self.config.connector

    def __repr__(self) -> str:
        return f"<ConnectorClient {self.config.connector} {self.config.base_url}>"

    def call_raw(self, method: str, url: str, *, permission: str | None = None, **kwargs: Any) -> httpx.Response:
        """Send with retries; a 2xx response, or a ``ConnectorError``."""
        with translate_errors(self.connector, permission):
            for attempt in retrying(self.config.max_attempts, self.config.max_retry_after_s):
                with attempt:
                    response = self.request(method, url, **kwargs)
                    if retryable_status(response.status_code):
                        raise TransientFailure(response)
            response.raise_for_status()
            return response

    def call(self, method: str, url: str, *, permission: str | None = None, shape: type | None = dict,
             **kwargs: Any) -> Any:
        """Send with retries and decode the JSON body.

        ``shape`` is the type the body must have (``dict``, ``list``, or
        ``None`` to accept anything, an empty body included); anything else
        is a ``BadResponse``. Extra keyword arguments go to ``httpx``.
        """
        response = self.call_raw(method, url, permission=permission, **kwargs)
        body = _decode(response, self.connector)
        if shape is not None and not isinstance(body, shape):
            raise BadResponse(self.connector, f"{_where(response.request)} returned {type(body).__name__}, "
                              f"expected a JSON {shape.__name__}", status=response.status_code)
        return body


def make_client(config: HttpConfig, transport: httpx.BaseTransport | None = None) -> ConnectorClient:
    """The client every connector uses; ``transport`` is for tests (``httpx.MockTransport``)."""
    return ConnectorClient(config, transport)


# ---- pagination -----------------------------------------------------------------


def _items(body: Any, key: str | None, client: ConnectorClient) -> list[Any]:
    items = body if key is None else (body or {}).get(key, []) if isinstance(body, dict) else None
    if not isinstance(items, list):
        raise BadResponse(client.connector, f"a page did not hold a list{f' under {key!r}' if key else ''}")
    return items


def paginate_link(client: ConnectorClient, url: str, *, params: dict | None = None,
                  permission: str | None = None) -> Iterator[Any]:
    """Items from a JSON-array API paged with ``Link: <...>; rel="next"`` (Okta)."""
    next_url: str | None = url
    for _ in range(_MAX_PAGES):
        if next_url is None:
            return
        response = client.call_raw("GET", next_url, permission=permission, params=params)
        yield from _items(_decode(response, client.connector), None, client)
        next_url, params = response.links.get("next", {}).get("url"), None  # the next link carries the cursor


def paginate_odata(client: ConnectorClient, url: str, *, params: dict | None = None,
                   permission: str | None = None) -> Iterator[Any]:
    """Items from ``value`` across ``@odata.nextLink`` pages (Microsoft Graph, MDE)."""
    next_url: str | None = url
    for _ in range(_MAX_PAGES):
        if not next_url:
            return
        body = client.call("GET", next_url, permission=permission, params=params)
        yield from _items(body, "value", client)
        next_url, params = body.get("@odata.nextLink"), None


def paginate_pages(client: ConnectorClient, url: str, body: dict, *, limit: int = 100,
                   extract: Callable[[Any], list[Any]], permission: str | None = None) -> Iterator[Any]:
    """Items from a POST search paged with ``page``/``limit`` (MISP restSearch).

    A page shorter than ``limit`` is the last one.
    """
    for page in range(1, _MAX_PAGES + 1):
        result = client.call("POST", url, permission=permission, shape=None,
                             json={**body, "page": page, "limit": limit})
        items = extract(result)
        yield from items
        if len(items) < limit:
            return


def paginate_taxii(client: ConnectorClient, url: str, *, params: dict | None = None,
                   permission: str | None = None) -> Iterator[Any]:
    """Objects from a TAXII 2.1 envelope, following ``more`` and ``next``."""
    params = dict(params or {})
    for _ in range(_MAX_PAGES):
        body = client.call("GET", url, permission=permission, params=params,
                           headers={"Accept": "application/taxii+json;version=2.1"})
        yield from _items(body, "objects", client)
        if not body.get("more") or not body.get("next"):
            return
        params["next"] = body["next"]
