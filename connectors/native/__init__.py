"""soc-agent's own normalised format: one Alert as JSON per line."""

from connectors.native.mapping import detect, to_alert

__all__ = ["detect", "to_alert"]
