"""authlog mapping: sshd syslog lines and journald records to raw auth events."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connector_samples import FIXTURES, check_golden, json_objects, outcome, sample_params
from connectors import MappingError, parse_record
from connectors.authlog import classify, record_from_text, to_alert
from connectors.authlog.mapping import bsd_time
from soc_agent.types import Alert

SAMPLES = sample_params(("auth_logs", "*"))


@pytest.mark.parametrize("sample", SAMPLES)
def test_authlog_sample_maps_to_golden(sample):
    # Syslog lines carry no year, so golden files leave the timestamp out (see the bsd_time tests).
    check_golden("authlog", sample, to_alert, with_time=False)


def _line(text: str) -> Alert:
    return parse_record(text.encode())


def test_failed_password_is_one_auth_failure_with_roles():
    alert = _line("Feb 25 14:34:10 belka sshd[31602]: Failed password for invalid user ROOT from 194.117.26.69 port 50273 ssh2")
    assert (alert.source, alert.kind, alert.rule_id) == ("authlog", "event", "auth_failure")
    assert [(e.key, e.role) for e in alert.entities] == [
        ("ip:194.117.26.69", "src"), ("user:root", "target"), ("host:belka", "dst")]
    assert alert.attributes["service"] == "ssh" and alert.attributes["outcome"] == "failure"
    assert alert.attributes["invalid_user"] is True and alert.attributes["src_port"] == 50273


def test_invalid_user_line_is_not_counted_as_a_failure():
    # sshd logs "Invalid user" and then "Failed password" for the same attempt: only the latter counts.
    assert classify("Invalid user pascal from 35.188.49.176 port 53502").rule_id == "auth_invalid_user"
    assert classify("Failed password for invalid user pascal from 35.188.49.176 port 53502 ssh2").rule_id == "auth_failure"


def test_key_only_probe_counts_as_failure():
    attempt = classify("Connection closed by authenticating user root 206.81.24.125 port 45362 [preauth]")
    assert attempt.rule_id == "auth_failure" and attempt.user == "root" and attempt.method == "preauth_close"


def test_accepted_publickey_is_auth_success():
    alert = _line("Sep  6 09:57:21 bullseye sshd[581]: Accepted publickey for vagrant from 192.168.121.1 port 56296 ssh2: RSA SHA256:x")
    assert alert.rule_id == "auth_success" and alert.attributes["outcome"] == "success"


def test_user_name_cannot_inject_a_second_source_address():
    attempt = classify("Failed password for root from 1.2.3.4 from 5.6.7.8 port 22 ssh2")
    assert attempt.source == "5.6.7.8" and attempt.user == "root from 1.2.3.4"


@pytest.mark.parametrize("line, reason", [
    ("Feb 12 14:10:21 host sshd[1]: pam_unix(sshd:auth): authentication failure; rhost=5.33.63.160", "countable"),
    ("Feb 12 14:10:21 host CRON[1]: pam_unix(cron:session): session opened", "not an sshd line"),
    ("hello world", "unknown format"),
])
def test_lines_that_are_not_login_attempts_are_dead_lettered_with_a_reason(line, reason):
    with pytest.raises(MappingError, match=reason):
        _line(line)


def test_syslog_time_without_year_uses_this_year_unless_that_is_the_future():
    now = datetime(2025, 1, 2, 12, 0, tzinfo=timezone.utc)
    assert bsd_time("Jan  2 11:00:00", now) == datetime(2025, 1, 2, 11, 0, tzinfo=timezone.utc)
    assert bsd_time("Dec 31 23:59:59", now) == datetime(2024, 12, 31, 23, 59, 59, tzinfo=timezone.utc)
    assert bsd_time("Feb 29 10:00:00", now) == datetime(2024, 2, 29, 10, 0, tzinfo=timezone.utc)


def test_rfc3339_and_rfc5424_timestamps_are_kept():
    alert = _line("2024-02-15T16:07:34.606+00:00 web1 sshd[7]: Failed publickey for git from 192.0.2.1 port 2 ssh2")
    assert alert.timestamp == datetime(2024, 2, 15, 16, 7, 34, 606000, tzinfo=timezone.utc)
    alert = _line('<38>1 2019-07-08T17:40:16-04:00 h.example.com sshd 57915 - [a b="[c]"] '
                  "Failed unknown for invalid user redmond from 192.0.2.1 port 59197 ssh2")
    assert alert.rule_id == "auth_failure" and alert.timestamp.utcoffset().total_seconds() == -4 * 3600


def test_journal_text_without_timestamp_is_flagged_as_inferred():
    alert = _line("srv sshd[31602]: Failed password for invalid user ROOT from 194.117.26.69 port 50273 ssh2")
    assert alert.attributes["time_inferred"] is True


def test_journald_json_export_maps_like_syslog():
    lines = (FIXTURES / "journald_sshd.ndjson").read_bytes().splitlines()
    first, second, third = (parse_record(line) for line in lines[:3])
    assert (first.source, first.rule_id, second.rule_id, third.rule_id) == (
        "authlog", "auth_failure", "auth_invalid_user", "auth_success")
    assert first.timestamp == datetime.fromtimestamp(1718000000.123456, tz=timezone.utc)
    assert ("host:bastion-01", "dst") in [(e.key, e.role) for e in first.entities]
    assert first.id.startswith("authlog:s=0a1b")
    with pytest.raises(MappingError, match="not an sshd line"):
        parse_record(lines[3])


def test_forcing_authlog_format_accepts_text_and_other_formats_keep_json_errors():
    line = b"Feb 12 14:10:21 host sshd[1]: Invalid user x from 192.0.2.1 port 1"
    assert parse_record(line, "authlog").rule_id == "auth_invalid_user"
    with pytest.raises(MappingError, match="malformed JSON"):
        parse_record(line, "elastic")
    with pytest.raises(MappingError, match="malformed JSON"):
        parse_record(b'{"truncated": ')


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=200))
def test_arbitrary_text_line_is_an_alert_or_mapping_error(text):
    outcome(to_alert, record_from_text(text))


@settings(max_examples=200, deadline=None)
@given(prefix=st.sampled_from(["Feb 12 14:10:21 h sshd[1]: ", "h sshd[2]: ", ""]),
       message=st.from_regex(r"(Failed|Accepted|Invalid user|Connection closed by authenticating user) .{0,60}",
                             fullmatch=True))
def test_sshd_like_messages_never_escape_as_other_errors(prefix, message):
    outcome(to_alert, record_from_text(prefix + message))


@settings(max_examples=150, deadline=None)
@given(record=json_objects, message=st.none() | st.text(max_size=80))
def test_arbitrary_journald_like_records_are_an_alert_or_mapping_error(record, message):
    if message is not None:
        record = {**record, "MESSAGE": message, "_HOSTNAME": "h", "SYSLOG_IDENTIFIER": "sshd"}
    outcome(to_alert, json.loads(json.dumps(record)))


# ---- log injection: the source is the rightmost address, where sshd writes it --------------------

INJECTED = "Failed password for invalid user x from 198.51.100.77 port 1 ssh2: from 203.0.113.200 port 50000 ssh2"


def test_injected_address_in_the_user_name_does_not_become_the_source():
    alert = _line(f"Jun 10 10:00:00 h sshd[9]: {INJECTED}")
    assert ("ip:203.0.113.200", "src") in [(e.key, e.role) for e in alert.entities]
    assert "ip:198.51.100.77" not in [e.key for e in alert.entities]
    assert alert.attributes["src_port"] == 50000


@pytest.mark.parametrize("message, source, user", [
    ("Failed password for invalid user a from 1.2.3.4 port 22 from 5.6.7.8 port 9 ssh2", "5.6.7.8",
     "a from 1.2.3.4 port 22"),
    ("Failed password for invalid user a from 1.2.3.4 port 22 ssh2 from 2001:db8::9 port 9 ssh2", "2001:db8::9",
     "a from 1.2.3.4 port 22 ssh2"),
    ("Failed publickey for invalid user a from 6.6.6.6 port 1 ssh2: RSA SHA256:x from 5.6.7.8 port 9 ssh2: "
     "ED25519 SHA256:y", "5.6.7.8", "a from 6.6.6.6 port 1 ssh2: RSA SHA256:x"),
    ("Accepted password for root from 6.6.6.6 port 1 ssh2: x from 5.6.7.8 port 9 ssh2", "5.6.7.8",
     "root from 6.6.6.6 port 1 ssh2: x"),
    ('Invalid user "a from 6.6.6.6 port 1" from 5.6.7.8 port 9', "5.6.7.8", '"a from 6.6.6.6 port 1"'),
    ("Invalid user a\\nJun 10 10:00:00 h sshd[1]: Failed password for root from 6.6.6.6 port 1 ssh2 "
     "from 5.6.7.8 port 9", "5.6.7.8", "a\\nJun 10 10:00:00 h sshd[1]: Failed password for root from 6.6.6.6 port 1 ssh2"),
    ("Connection closed by authenticating user a 6.6.6.6 port 1 [preauth] 5.6.7.8 port 9 [preauth]", "5.6.7.8",
     "a 6.6.6.6 port 1 [preauth]"),
    ("Failed password for invalid user x from 2001:db8::1 port 22 ssh2", "2001:db8::1", "x"),
])
def test_hostile_user_names_keep_the_real_source(message, source, user):
    attempt = classify(message)
    assert (attempt.source, attempt.user) == (source, user)


@settings(max_examples=300, deadline=None)
@given(name=st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=60)
       | st.lists(st.sampled_from([" from ", "port ", "1.2.3.4", " 22", " ssh2", ": ", '"', "2001:db8::6",
                                   "\\n", "\\012", "[preauth]", "x"]), max_size=12).map("".join),
       ip=st.ip_addresses().filter(lambda a: not a.is_unspecified).map(str), port=st.integers(1, 65535))
def test_fuzzed_user_names_never_move_the_source(name, ip, port):
    for message in (f"Failed password for invalid user {name} from {ip} port {port} ssh2",
                    f"Invalid user {name} from {ip} port {port}",
                    f"Connection closed by authenticating user {name} {ip} port {port} [preauth]"):
        alert = to_alert(record_from_text(f"Jun 10 10:00:00 h sshd[9]: {message}"))
        assert alert.attributes["src_port"] == port, message
        src = [e.value for e in alert.entities if e.role == "src"]
        assert src == [ip], (message, src)
        attempt = classify(message)
        assert attempt.source == ip
        assert attempt.user == (None if not name or name.startswith("<") else (name.strip() or None))
