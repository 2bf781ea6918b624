"""Secrets come from the environment or a 0600 file and never print themselves."""

from __future__ import annotations

import os
import pickle

import pytest

from connectors.errors import ConfigError
from connectors.secrets import Secret, SecretStore, SecretsFileWarning, load_secrets_file

VALUE = "sk-live-0123456789abcdef"


def test_secret_is_masked_in_str_and_repr_and_refuses_pickling():
    secret = Secret(VALUE, "OKTA_API_TOKEN")
    assert VALUE not in str(secret) and VALUE not in repr(secret) and VALUE not in f"{secret}"
    assert "OKTA_API_TOKEN" in repr(secret)
    assert secret.reveal() == VALUE
    with pytest.raises(TypeError):
        pickle.dumps(secret)


def test_environment_wins_over_the_file():
    store = SecretStore({"TOKEN": "from-env"}, {"TOKEN": "from-file", "OTHER": "file-only"})
    assert store.get("TOKEN").reveal() == "from-env"
    assert store.get("OTHER").reveal() == "file-only"
    assert "file-only" not in repr(store)


def test_missing_secret_names_it_without_a_value():
    with pytest.raises(ConfigError) as err:
        SecretStore({}, {}).get("MISP_API_KEY")
    assert "MISP_API_KEY" in str(err.value)


@pytest.mark.parametrize("text", ["OKTA: abc\nMISP: '123'\n", '{"OKTA": "abc", "MISP": 123}'])
def test_secrets_file_is_yaml_or_json(tmp_path, text):
    path = tmp_path / "secrets"
    path.write_text(text)
    os.chmod(path, 0o600)
    assert load_secrets_file(path) == {"OKTA": "abc", "MISP": "123"}


def test_a_group_or_world_readable_secrets_file_is_warned_about(tmp_path):
    path = tmp_path / "secrets.yml"
    path.write_text("A: b\n")
    os.chmod(path, 0o644)
    with pytest.warns(SecretsFileWarning, match="0644"):
        load_secrets_file(path)


def test_a_broken_secrets_file_does_not_echo_its_content(tmp_path):
    path = tmp_path / "secrets.yml"
    path.write_text(f"TOKEN: [{VALUE}\n")
    os.chmod(path, 0o600)
    with pytest.raises(ConfigError) as err:
        load_secrets_file(path)
    assert VALUE not in str(err.value) and VALUE not in repr(err.value)


def test_store_from_environment_reads_the_file_named_by_the_env_var(tmp_path, monkeypatch):
    path = tmp_path / "s.json"
    path.write_text('{"FROM_FILE_ONLY_X": "v"}')
    os.chmod(path, 0o600)
    monkeypatch.setenv("SOC_AGENT_SECRETS_FILE", str(path))
    assert SecretStore.from_environment().get("FROM_FILE_ONLY_X").reveal() == "v"
