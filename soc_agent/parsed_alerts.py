"""A bounded cache of alerts parsed from their stored rows."""

from __future__ import annotations

from soc_agent.types import Alert


class ParsedAlerts:
    """Alerts already parsed from their stored rows, by row id and payload hash.

    The hash is part of the key because a SQLite row id can be reused after a
    rolled-back insert; a row's payload itself never changes.

    A case is re-read on every run, and parsing its alerts again each time
    cost more than the rest of the node. Bounded: past ``max_entries`` it starts over.
    """

    def __init__(self, max_entries: int = 50_000) -> None:
        self.max_entries = max_entries
        self._by_row: dict[tuple[int, int], Alert] = {}

    def get(self, row_id: int, payload: str) -> Alert:
        """The alert stored in row ``row_id``, without its raw vendor payload."""
        key = (row_id, hash(payload))
        alert = self._by_row.get(key)
        if alert is None:
            if len(self._by_row) >= self.max_entries:
                self._by_row.clear()
            # The raw vendor payloads stay in the store as evidence; the run (and its checkpoint) carries
            # only the normalised fields, which is all any node reads.
            alert = self._by_row[key] = Alert.model_validate_json(payload).model_copy(update={"raw": {}})
        return alert
