"""Redis Streams: partitioned alert streams, consumer groups, leases, dead letters.

Layout under one key prefix (so tests and tenants never see each other)::

    <prefix>:p:<n>        partition stream n; fields raw, source, line_no (an alert), or
                          kind=resume, raw, source (a decided approval for the case's owner to resume)
    <prefix>:dlq          dead-letter stream; fields raw, source, reason, partition
    <prefix>:lease:<n>    which worker owns partition n (SET NX PX, renewed)
    <prefix>:workers      live workers (sorted set scored by last heartbeat)
    <prefix>:attempts     delivery attempts per message id (hash)
    <prefix>:stats        published / shed counters (hash)
    <prefix>:route:<key>  the partition alerts joining through <key> go to (expires)

The invariant that makes a fleet correct: **one case is handled by one
worker at a time**. Each alert goes to the partition of its correlation key
(``correlation_key``: the source entity, which is also what the threshold
detectors group by), and a partition has exactly one owner, the holder of
its lease. The source alone is not enough: correlation also joins alerts of
different sources through a strong indicator (a file hash, a domain, a URL,
a sender, an external address; ``soc_agent.correlate``), and two malware
alerts sharing a hash from two hosts would hash to two partitions and open
two cases. So the publisher routes through Redis (``route_keys``): every key
an alert can join a case through (its strong indicators, most telling
first, then its same-rule weak entities) is looked up, the first that is
routed already decides the partition (else the source does), and all of
them are then routed there for ``route_ttl_s`` (the correlation window),
atomically (one Lua script per alert). Raw events keep their source's
partition unless an alert routed that source elsewhere first. The in-memory intake state (dedupe, thresholds, correlator) is
kept per partition, so alerts of one partition only ever join that
partition's cases; two workers never open two cases for the same attacker
and never update one case concurrently.

A worker that dies stops renewing its leases; another takes the partition
over, rebuilds its intake state from the store, and claims its pending
entries with XAUTOCLAIM once they have been idle ``claim_idle_ms``. Each
delivery attempt is counted; past ``max_attempts`` the entry goes to the
dead-letter stream with its reason. Acknowledged entries are deleted, so a
partition's XLEN is its backlog, which is what the publisher's backpressure
watches: above ``high_water`` it waits, and after ``max_wait_s`` it sheds the
alert to the dead-letter stream with the reason. Nothing is dropped silently.

A publisher that can hand an alert back to its sender (the HTTP intake of
``soc-agent serve --to-broker``) uses ``offer`` instead: all of a request's
alerts are queued in one transaction or none is, and a full partition or an
unreachable Redis raises :class:`Refused`, which the server answers with
429 / 503 and ``Retry-After`` so the sender keeps the alert and retries.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

import redis

from connectors import MappingError, parse_record
from soc_agent.correlate import is_strong, scoped_key
from soc_agent.lines import OversizeLine, bounded_lines
from soc_agent.types import Alert

__all__ = ["Broker", "BrokerConfig", "Message", "PublishResult", "Refused", "correlation_key", "partition_of",
           "route_keys"]


@dataclass(frozen=True)
class BrokerConfig:
    """Where the broker is and how the fleet uses it."""

    url: str = "redis://127.0.0.1:6379/0"
    prefix: str = "soc"
    """Every key starts with this; one prefix per deployment (or per test)."""
    partitions: int = 12
    """Fixed for the life of the streams: changing it re-routes correlation keys."""
    group: str = "workers"
    lease_ms: int = 10_000
    """A partition whose owner has not renewed for this long can be taken over."""
    claim_idle_ms: int = 15_000
    """Pending entries idle this long are claimed (XAUTOCLAIM) by the partition's owner."""
    max_attempts: int = 5
    """Deliveries before an entry is dead-lettered as poison."""
    high_water: int = 20_000
    """Backlog (entries) of one partition above which the publisher waits."""
    max_wait_s: float = 10.0
    """How long the publisher waits for a backlog to drain before shedding to the dead-letter stream."""
    route_ttl_s: int = 3600
    """How long a correlation key stays routed to its partition after its last alert (the correlation window)."""

    @classmethod
    def from_env(cls, **overrides: object) -> "BrokerConfig":
        """Defaults, then ``SOC_AGENT_REDIS_URL`` / ``SOC_AGENT_BROKER_*`` variables, then overrides."""
        env = {
            "url": os.environ.get("SOC_AGENT_REDIS_URL"),
            "prefix": os.environ.get("SOC_AGENT_BROKER_PREFIX"),
            "partitions": os.environ.get("SOC_AGENT_BROKER_PARTITIONS"),
            "lease_ms": os.environ.get("SOC_AGENT_BROKER_LEASE_MS"),
            "claim_idle_ms": os.environ.get("SOC_AGENT_BROKER_CLAIM_IDLE_MS"),
            "max_attempts": os.environ.get("SOC_AGENT_BROKER_MAX_ATTEMPTS"),
            "high_water": os.environ.get("SOC_AGENT_BROKER_HIGH_WATER"),
            "route_ttl_s": os.environ.get("SOC_AGENT_BROKER_ROUTE_TTL_S"),
        }
        values: dict[str, object] = {k: v for k, v in env.items() if v is not None}
        values.update({k: v for k, v in overrides.items() if v is not None})
        types = {f: type(getattr(cls, f)) for f in values}
        return cls(**{k: types[k](v) for k, v in values.items()})


@dataclass(frozen=True)
class Message:
    """One stream entry as a worker sees it."""

    partition: int
    entry_id: str
    raw: bytes
    source: str
    line_no: int | None
    kind: str = "alert"
    """``alert`` (a line to triage) or ``resume`` (a decided approval; see ``soc_agent.fleet.resume``)."""

    @property
    def key(self) -> str:
        """Unique across partitions: the inbox row's primary key."""
        return f"{self.partition}:{self.entry_id}"


@dataclass
class PublishResult:
    """What ``publish`` did with its lines."""

    queued: int = 0
    shed: int = 0
    dead_lettered: int = 0
    """Lines too long to queue (read from a stream), sent to the dead-letter stream instead."""
    waited_s: float = 0.0
    per_partition: dict[int, int] = field(default_factory=dict)
    entries: list[tuple[int, str]] = field(default_factory=list)
    """(partition, stream entry id) of each queued line; filled by ``offer`` only (``publish`` streams)."""


class Refused(Exception):
    """``offer`` queued nothing: a partition stayed over its high-water mark, or Redis did not answer.

    ``overloaded`` tells the two apart (429 versus 503 for an HTTP sender);
    ``retry_after_s`` is a hint for the sender's ``Retry-After``.
    """

    def __init__(self, reason: str, *, overloaded: bool, retry_after_s: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.overloaded = overloaded
        self.retry_after_s = retry_after_s


def correlation_key(alert: Alert) -> str:
    """The key that decides an alert's partition when no key of it is routed yet: its source entity.

    Threshold detectors group raw events by the source, and follow-ups and
    re-sends carry the same entities as their first alert. Alerts of other
    sources that share a strong indicator are kept together by the routes
    (``route_keys``), not by this key.
    """
    for entity in alert.entities:
        if entity.role == "src":
            return entity.key
    if alert.entities:
        return alert.entities[0].key
    return f"{alert.source}:{alert.rule_id}"



def route_keys(alert: Alert) -> list[str]:
    """The keys an alert can join a case through, in the order the correlator tries them.

    The alert's entities in its own order (its source first): a strong
    indicator joins any rule's case, a weak entity only its rule's (paired
    with the rule, as the correlator pairs them); a raw event only by its
    source, the detectors' group key. Scoped by tenant like the correlator's keys.
    """
    if alert.kind == "event" or alert.source == "detector":
        return [f"k:{scoped_key(alert.tenant, correlation_key(alert))}"]
    keys = [f"k:{scoped_key(alert.tenant, e.key)}" if is_strong(e) else
            f"r:{alert.rule_id}:{scoped_key(alert.tenant, e.key)}" for e in alert.entities]
    return list(dict.fromkeys(keys)) or [f"k:{scoped_key(alert.tenant, correlation_key(alert))}"]


def partition_of(key: str, partitions: int) -> int:
    """A stable partition for ``key`` (the same in every process, unlike ``hash()``)."""
    digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % partitions


# Renew or release a lease only if we still hold it: a lease that expired and was
# taken by another worker must never be extended or deleted by the old owner.
_RENEW = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end return 0"
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"
# KEYS: an alert's route keys, most telling first; ARGV: the partition if none is routed yet, the ttl (ms).
# The first routed key decides; every key is then routed there (the newest case holding a key is where
# the correlator would join it), all in one step so two publishers never route one key two ways.
_ROUTE = """
local partition = false
for _, key in ipairs(KEYS) do
  partition = redis.call('get', key)
  if partition then break end
end
partition = partition or ARGV[1]
for _, key in ipairs(KEYS) do
  redis.call('set', key, partition, 'px', ARGV[2])
end
return tonumber(partition)
"""


class Broker:
    """The fleet's Redis Streams operations, for publishers and workers alike."""

    def __init__(self, config: BrokerConfig, client: redis.Redis | None = None) -> None:
        self.config = config
        # The socket timeout must outlast a CLIENT PAUSE or failover, or every pause becomes an error.
        self.redis = client or redis.Redis.from_url(config.url, socket_timeout=30, socket_connect_timeout=5,
                                                    health_check_interval=15)
        self._renew = self.redis.register_script(_RENEW)
        self._release = self.redis.register_script(_RELEASE)
        self._route = self.redis.register_script(_ROUTE)

    # ---- keys ------------------------------------------------------------

    def stream(self, partition: int) -> str:
        """The stream key of ``partition``."""
        return f"{self.config.prefix}:p:{partition}"

    @property
    def dlq(self) -> str:
        """The dead-letter stream key."""
        return f"{self.config.prefix}:dlq"

    def _k(self, name: str) -> str:
        return f"{self.config.prefix}:{name}"

    # ---- publishing --------------------------------------------------------

    def partition(self, alert: Alert) -> int:
        """The partition of a parsed alert: where the cases it can join are (see ``route_keys``).

        Without Redis, the one of its correlation key (queueing then fails anyway).
        """
        try:
            return self._routed([alert], self.redis)[0]
        except redis.RedisError:
            return partition_of(correlation_key(alert), self.config.partitions)

    def _routed(self, alerts: list[Alert], client) -> list[int]:
        """Route ``alerts`` in order, in one round trip."""
        pipe = client.pipeline(transaction=False)
        for alert in alerts:
            self._route(keys=[f"{self.config.prefix}:route:{k}" for k in route_keys(alert)],
                        args=[partition_of(correlation_key(alert), self.config.partitions),
                              self.config.route_ttl_s * 1000], client=pipe)
        return [int(p) for p in pipe.execute()]

    def _parse(self, line: bytes, fmt: str, max_bytes: int) -> Alert | None:
        try:
            return parse_record(line.rstrip(b"\r\n"), fmt, max_bytes)
        except MappingError:
            return None

    def _route_lines(self, lines: list[bytes], fmt: str, max_bytes: int = 256 * 1024) -> list[int]:
        """The partitions of input lines (unparseable lines go where their bytes hash)."""
        alerts = [self._parse(line, fmt, max_bytes) for line in lines]
        routed = iter(self._routed([a for a in alerts if a is not None], self.redis))
        # An unparseable line: the worker dead-letters it with the parse error; any partition will do.
        return [next(routed) if a is not None else partition_of(hashlib.sha1(line).hexdigest(),
                                                                self.config.partitions)
                for line, a in zip(lines, alerts)]

    def route(self, line: bytes, fmt: str = "auto", max_bytes: int = 256 * 1024) -> int:
        """The partition of one input line (unparseable lines go where their bytes hash)."""
        return self._route_lines([line], fmt, max_bytes)[0]

    def publish(self, lines: Iterable[bytes], source: str = "stdin", fmt: str = "auto",
                chunk: int = 500, max_line_bytes: int = 256 * 1024) -> PublishResult:
        """Queue lines on their partitions; wait, then shed, when a partition's backlog is too long.

        A stream (a file, stdin) is read in bounded memory: a line over ``max_line_bytes`` goes to the
        dead-letter stream with its reason and first bytes, never whole into Redis.
        """
        result = PublishResult()
        batch: list[tuple[bytes, int]] = []
        if hasattr(lines, "readline"):
            lines = bounded_lines(lines, max_line_bytes)
        for line_no, line in enumerate(lines, start=1):
            if isinstance(line, OversizeLine):
                self.redis.xadd(self.dlq, {"raw": line.head, "source": source, "line_no": line_no,
                                           "reason": line.reason})
                result.dead_lettered += 1
                continue
            if not line.strip():
                continue
            batch.append((line, line_no))
            if len(batch) >= chunk:
                self._publish_routed(batch, fmt, source, result)
                batch = []
        if batch:
            self._publish_routed(batch, fmt, source, result)
        return result

    def _publish_routed(self, batch: list[tuple[bytes, int]], fmt: str, source: str, result: PublishResult) -> None:
        partitions = self._route_lines([line for line, _ in batch], fmt)
        self._publish_batch([(p, line, n) for p, (line, n) in zip(partitions, batch)], source, result)

    def _publish_batch(self, batch: list[tuple[int, bytes, int]], source: str, result: PublishResult) -> None:
        full = self._wait_for_room({p for p, _, _ in batch}, result)
        pipe = self.redis.pipeline(transaction=False)
        queued = shed = 0
        for partition, line, line_no in batch:
            if partition in full:
                pipe.xadd(self.dlq, {"raw": line, "source": source, "line_no": line_no, "partition": partition,
                                     "reason": f"backpressure: partition {partition} backlog over "
                                               f"{self.config.high_water} for {self.config.max_wait_s}s"})
                shed += 1
            else:
                pipe.xadd(self.stream(partition), {"raw": line, "source": source, "line_no": line_no})
                queued += 1
                result.per_partition[partition] = result.per_partition.get(partition, 0) + 1
        pipe.hincrby(self._k("stats"), "queued", queued)
        pipe.hincrby(self._k("stats"), "shed", shed)
        pipe.execute()
        result.queued += queued
        result.shed += shed

    def offer(self, entries: list[tuple[int, bytes, str]], max_wait_s: float = 1.0,
              retry_after_s: int = 5) -> PublishResult:
        """Queue ``(partition, line, source)`` entries all together, or raise :class:`Refused` having queued none.

        Waits up to ``max_wait_s`` (short: a request is waiting) for a full
        partition to drain below ``high_water``. Refusals are counted in the
        ``refused`` stat; the alerts themselves stay with the sender.
        """
        result = PublishResult()
        if not entries:
            return result
        try:
            full = self._wait_for_room({p for p, _, _ in entries}, result, max_wait_s)
            if full:
                self.redis.hincrby(self._k("stats"), "refused", len(entries))
                raise Refused(f"backpressure: partition {min(full)} backlog over {self.config.high_water} "
                              f"entries for {max_wait_s}s; retry later", overloaded=True,
                              retry_after_s=retry_after_s)
            # MULTI/EXEC: a request's alerts are queued together or not at all, so a retried
            # request never queues half of itself twice.
            pipe = self.redis.pipeline(transaction=True)
            for partition, line, source in entries:
                pipe.xadd(self.stream(partition), {"raw": line, "source": source})
            pipe.hincrby(self._k("stats"), "queued", len(entries))
            ids = pipe.execute()[:-1]
        except redis.RedisError as exc:
            # Not the message text: it can carry the URL, and the sender needs only "try again".
            raise Refused(f"broker unavailable ({type(exc).__name__}); retry later", overloaded=False,
                          retry_after_s=retry_after_s) from None
        for (partition, _, _), entry_id in zip(entries, ids):
            result.entries.append((partition, entry_id.decode() if isinstance(entry_id, bytes) else entry_id))
            result.per_partition[partition] = result.per_partition.get(partition, 0) + 1
        result.queued = len(entries)
        return result

    def queue_resume(self, partition: int, payload: bytes, source: str) -> str:
        """Queue a decided approval on its case's partition; returns the stream entry id.

        Never held back by backpressure: a decision is small and rare, and it
        is answered to a person who is waiting for it.
        """
        entry_id = self.redis.xadd(self.stream(partition), {"kind": "resume", "raw": payload, "source": source})
        return entry_id.decode() if isinstance(entry_id, bytes) else entry_id

    def _wait_for_room(self, partitions: set[int], result: PublishResult,
                       max_wait_s: float | None = None) -> set[int]:
        """Partitions still over the high-water mark after waiting up to ``max_wait_s`` (default: the config's)."""
        limit = self.config.max_wait_s if max_wait_s is None else max_wait_s
        started = time.monotonic()
        delay = 0.05
        while True:
            pipe = self.redis.pipeline(transaction=False)
            ordered = sorted(partitions)
            for p in ordered:
                pipe.xlen(self.stream(p))
            full = {p for p, n in zip(ordered, pipe.execute()) if n >= self.config.high_water}
            waited = time.monotonic() - started
            if not full or waited >= limit:
                result.waited_s += waited
                return full
            time.sleep(min(delay, limit - waited))
            delay = min(delay * 2, 1.0)

    # ---- consuming ---------------------------------------------------------

    def ensure_group(self, partition: int) -> None:
        """Create the partition's stream and consumer group if they do not exist."""
        try:
            self.redis.xgroup_create(self.stream(partition), self.config.group, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def read(self, partitions: Iterable[int], consumer: str, count: int, block_ms: int,
             pending: bool = False) -> list[Message]:
        """New entries of ``partitions`` for ``consumer`` (or, with ``pending``, its own unacknowledged ones)."""
        streams = {self.stream(p): "0" if pending else ">" for p in partitions}
        if not streams:
            return []
        reply = self.redis.xreadgroup(self.config.group, consumer, streams, count=count,
                                      block=None if pending else block_ms)
        return [m for name, entries in reply or [] for m in self._messages(name, entries)]

    def claim(self, partition: int, consumer: str, count: int = 500) -> list[Message]:
        """Take over entries of ``partition`` left pending (idle ``claim_idle_ms``) by another consumer."""
        messages: list[Message] = []
        cursor = "0-0"
        while True:
            cursor, entries, *_ = self.redis.xautoclaim(self.stream(partition), self.config.group, consumer,
                                                        self.config.claim_idle_ms, cursor, count=count)
            messages.extend(self._messages(self.stream(partition), entries))
            if cursor in (b"0-0", "0-0") or not entries:
                return messages

    def _messages(self, stream: bytes | str, entries: list) -> list[Message]:
        name = stream.decode() if isinstance(stream, bytes) else stream
        partition = int(name.rsplit(":", 1)[1])
        out = []
        for entry_id, fields in entries:
            if fields is None:  # deleted while pending
                continue
            line_no = fields.get(b"line_no")
            out.append(Message(partition, entry_id.decode() if isinstance(entry_id, bytes) else entry_id,
                               fields.get(b"raw", b""), fields.get(b"source", b"broker").decode(),
                               int(line_no) if line_no else None, fields.get(b"kind", b"alert").decode()))
        return out

    def attempt(self, messages: list[Message]) -> list[int]:
        """Count one delivery attempt of each message; returns the attempt numbers."""
        if not messages:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for m in messages:
            pipe.hincrby(self._k("attempts"), m.key, 1)
        return pipe.execute()

    def ack(self, messages: Iterable[Message]) -> None:
        """Acknowledge and delete entries, so a stream's length stays its backlog."""
        by_partition: dict[int, list[str]] = {}
        for m in messages:
            by_partition.setdefault(m.partition, []).append(m.entry_id)
        if not by_partition:
            return
        pipe = self.redis.pipeline(transaction=False)
        for p, ids in by_partition.items():
            pipe.xack(self.stream(p), self.config.group, *ids)
            pipe.xdel(self.stream(p), *ids)
            pipe.hdel(self._k("attempts"), *[f"{p}:{i}" for i in ids])
        pipe.execute()

    def dead_letter(self, message: Message, reason: str) -> None:
        """Move a message to the dead-letter stream with why (the caller acks it after)."""
        self.redis.xadd(self.dlq, {"raw": message.raw, "source": message.source, "partition": message.partition,
                                   "line_no": message.line_no or 0, "entry": message.entry_id, "reason": reason})

    # ---- leases and membership ------------------------------------------------

    def heartbeat(self, worker_id: str) -> int:
        """Say this worker is alive; returns how many workers are alive."""
        now = time.time()
        pipe = self.redis.pipeline(transaction=False)
        pipe.zadd(self._k("workers"), {worker_id: now})
        pipe.zremrangebyscore(self._k("workers"), 0, now - self.config.lease_ms / 1000)
        pipe.zcard(self._k("workers"))
        return pipe.execute()[-1]

    def leave(self, worker_id: str) -> None:
        """Remove this worker from the live set (a clean shutdown)."""
        self.redis.zrem(self._k("workers"), worker_id)

    def acquire(self, partition: int, worker_id: str) -> bool:
        """Take the partition's lease if nobody holds it."""
        return bool(self.redis.set(self._k(f"lease:{partition}"), worker_id, nx=True, px=self.config.lease_ms))

    def renew(self, partitions: Iterable[int], worker_id: str) -> set[int]:
        """Extend our leases; returns the partitions we still hold."""
        ordered = list(partitions)
        pipe = self.redis.pipeline(transaction=False)
        for p in ordered:
            self._renew(keys=[self._k(f"lease:{p}")], args=[worker_id, self.config.lease_ms], client=pipe)
        return {p for p, ok in zip(ordered, pipe.execute()) if ok}

    def release(self, partition: int, worker_id: str) -> None:
        """Give the partition's lease up (only if we still hold it)."""
        self._release(keys=[self._k(f"lease:{partition}")], args=[worker_id])

    # ---- accounting ------------------------------------------------------------

    def stats(self) -> dict[str, int]:
        """Counters for the whole prefix: queued, shed, refused (by ``offer``), dead-letter length, backlog."""
        raw = self.redis.hgetall(self._k("stats"))
        pipe = self.redis.pipeline(transaction=False)
        for p in range(self.config.partitions):
            pipe.xlen(self.stream(p))
        backlog = sum(pipe.execute())
        return {"queued": int(raw.get(b"queued", 0)), "shed": int(raw.get(b"shed", 0)),
                "refused": int(raw.get(b"refused", 0)),
                "dead_letter_stream": self.redis.xlen(self.dlq), "backlog": backlog}

    def pending(self) -> int:
        """Entries delivered but not yet acknowledged, over all partitions."""
        total = 0
        for p in range(self.config.partitions):
            try:
                total += self.redis.xpending(self.stream(p), self.config.group)["pending"]
            except redis.ResponseError:
                pass
        return total

    def drop(self) -> int:
        """Delete every key under the prefix (tests, benchmarks); returns how many."""
        keys = list(self.redis.scan_iter(match=f"{self.config.prefix}:*", count=1000))
        if keys:
            self.redis.delete(*keys)
        return len(keys)
