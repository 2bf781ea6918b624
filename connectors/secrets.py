"""Secrets for connectors: from the environment or a secrets file, never from playbooks.

The connectors file names a secret (``secret: OKTA_API_TOKEN``); the value
is looked up in the environment first, then in the file named by
``SOC_AGENT_SECRETS_FILE`` (or the connectors file's ``secrets_file``): a
YAML or JSON mapping of name to value. The file should be readable by its
owner only (0600); a wider mode is allowed but warned about.

Values travel wrapped in ``Secret``, whose ``str`` and ``repr`` are masked,
so a config object, an error or a log line can never print one by accident.
"""

from __future__ import annotations

import logging
import os
import stat
import warnings
from collections.abc import Mapping
from pathlib import Path

import yaml

from connectors.errors import ConfigError

__all__ = ["SECRETS_FILE_ENV", "Secret", "SecretStore", "SecretsFileWarning", "load_secrets_file"]

SECRETS_FILE_ENV = "SOC_AGENT_SECRETS_FILE"
"""Environment variable naming the secrets file."""

_log = logging.getLogger(__name__)


class SecretsFileWarning(UserWarning):
    """The secrets file is readable or writable by group or others."""


class Secret:
    """A secret value that does not print itself; call ``reveal()`` where it is used."""

    __slots__ = ("_value", "name")

    def __init__(self, value: str, name: str = "secret") -> None:
        self._value = value
        self.name = name

    def reveal(self) -> str:
        """The plain value, for building a request header and nothing else."""
        return self._value

    def __repr__(self) -> str:
        return f"Secret({self.name!r})"

    def __str__(self) -> str:
        return "***"

    def __reduce__(self):  # pickling would write the value somewhere we do not control
        raise TypeError("Secret values cannot be pickled")


def load_secrets_file(path: Path) -> dict[str, str]:
    """Read a YAML/JSON name→value mapping; warn when its mode is wider than 0600."""
    try:
        mode = path.stat().st_mode
        text = path.read_text()
    except OSError as exc:
        raise ConfigError("secrets", f"cannot read secrets file {path} ({exc.strerror})", file=str(path)) from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        message = f"secrets file {path} has mode {stat.S_IMODE(mode):04o}; it should be 0600"
        _log.warning(message)
        warnings.warn(message, SecretsFileWarning, stacklevel=2)
    try:
        data = yaml.safe_load(text) or {}  # YAML is a superset of JSON
    except yaml.YAMLError:
        # The parser's message quotes the offending line, which may hold a value.
        raise ConfigError("secrets", f"secrets file {path} is not valid YAML or JSON", file=str(path)) from None
    if not isinstance(data, dict) or not all(isinstance(k, str) for k in data):
        raise ConfigError("secrets", f"secrets file {path} must be a mapping of name to value", file=str(path))
    return {k: str(v) for k, v in data.items() if v is not None}


class SecretStore:
    """Resolves secret names: the environment first, then the secrets file."""

    def __init__(self, env: Mapping[str, str] | None = None, file_values: Mapping[str, str] | None = None) -> None:
        self._env = os.environ if env is None else env
        self._file = dict(file_values or {})

    @classmethod
    def from_environment(cls, secrets_file: Path | None = None) -> "SecretStore":
        """The process environment plus ``SOC_AGENT_SECRETS_FILE`` (or ``secrets_file``) if set."""
        path = os.environ.get(SECRETS_FILE_ENV) or (str(secrets_file) if secrets_file else None)
        return cls(os.environ, load_secrets_file(Path(path)) if path else None)

    def get(self, name: str) -> Secret:
        """The named secret; ``ConfigError`` names the missing secret, never a value."""
        value = self._env.get(name)
        if value is None:
            value = self._file.get(name)
        if not value:
            raise ConfigError("secrets", f"secret {name} is not set in the environment or the secrets file")
        return Secret(value, name)

    def __repr__(self) -> str:
        return f"SecretStore(file_names={sorted(self._file)!r})"
