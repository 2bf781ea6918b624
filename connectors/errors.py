"""The one exception tree every connector raises.

Vendor and transport failures are translated into it at a single boundary,
``connectors.http.translate_errors``; nothing else catches ``httpx``
exceptions::

    ResponderError                 (connectors.base: the executor records it)
     └── ConnectorError            any connector failure; names the connector
          ├── ConfigError          bad connectors file, missing secret, unknown vendor (also a
          │                        soc_agent.config_file.ConfigError: file and line)
          ├── AuthError            401/403 or rejected credentials; never retried;
          │                        names the permission the call needed
          ├── RateLimited          429 still returned after the retries
          ├── Unavailable          5xx, timeout or transport error after the retries
          ├── BadResponse          HTML error page, truncated JSON, wrong shape
          └── NotFound             404, or a lookup that matched nothing

Messages are built only from the connector name, the HTTP method and path,
the status and fixed text: never from response bodies, headers, query
strings or configuration values, so a token cannot end up in a log line.
"""

from __future__ import annotations

from connectors.base import ResponderError
from soc_agent import config_file

__all__ = ["AuthError", "BadResponse", "ConfigError", "ConnectorError", "NotFound", "RateLimited", "Unavailable"]


class ConnectorError(ResponderError):
    """A connector could not do what was asked; safe to show and log.

    Subclasses ``ResponderError`` so the action executor records a failed
    action instead of crashing the run.
    """

    def __init__(self, connector: str, message: str, *, status: int | None = None,
                 permission: str | None = None, retry_after: float | None = None) -> None:
        super().__init__(f"{connector}: {message}")
        self.connector = connector
        self.status = status
        self.permission = permission
        self.retry_after = retry_after

    def __repr__(self) -> str:
        # The message is already safe; repr repeats only structured fields.
        return f"{type(self).__name__}(connector={self.connector!r}, status={self.status!r}, message={str(self)!r})"


class ConfigError(ConnectorError, config_file.ConfigError):
    """The connectors configuration is invalid or references a missing secret.

    Also a :class:`soc_agent.config_file.ConfigError`, so one ``except`` catches every configuration problem;
    ``file`` and ``line`` say where in the connectors or secrets file, when it is one.
    """

    def __init__(self, connector: str, message: str, *, file: str = "", line: int = 0) -> None:
        super().__init__(connector, message)
        self.file = file
        self.line = line


class AuthError(ConnectorError):
    """Credentials were rejected or lack a permission (401/403); retrying cannot help."""


class RateLimited(ConnectorError):
    """The vendor kept answering 429; ``retry_after`` is its last hint in seconds, if any."""


class Unavailable(ConnectorError):
    """The vendor failed (5xx), timed out or could not be reached, after retries."""


class BadResponse(ConnectorError):
    """The vendor answered, but not with what the API documents."""


class NotFound(ConnectorError):
    """The object does not exist at the vendor (404 or an empty lookup)."""
