"""Past one machine: Postgres for the store and checkpoints, Redis Streams between intake and workers.

``broker`` partitions alerts by correlation key over Redis Streams consumer
groups (leases, XAUTOCLAIM, dead letters, backpressure); ``worker`` is the
``soc-agent worker`` loop; ``scheduler`` runs TTL expiry from one leader;
``postgres`` builds the checkpointer and throwaway databases; ``tables``
holds the inbox that makes intake exactly-once and the resumes decided
approvals owe; ``resume`` hands a decision made in the server to the worker
that owns the case.
"""

from soc_agent.fleet.broker import Broker, BrokerConfig, Message, PublishResult, correlation_key, partition_of
from soc_agent.fleet.resume import FleetResumer
from soc_agent.fleet.scheduler import LeaderLock, Scheduler
from soc_agent.fleet.tables import InboxRow, ResumeRow
from soc_agent.fleet.worker import Worker, WorkerStats, run_worker

__all__ = [
    "Broker",
    "BrokerConfig",
    "FleetResumer",
    "InboxRow",
    "LeaderLock",
    "Message",
    "PublishResult",
    "ResumeRow",
    "Scheduler",
    "Worker",
    "WorkerStats",
    "correlation_key",
    "partition_of",
    "run_worker",
]
