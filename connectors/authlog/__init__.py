"""Linux sshd authentication lines (syslog text or journald JSON export) as raw events."""

from connectors.authlog.mapping import TEXT_KEY, classify, detect, record_from_text, to_alert

__all__ = ["TEXT_KEY", "classify", "detect", "record_from_text", "to_alert"]
