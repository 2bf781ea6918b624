"""Fixtures for fleet tests: a throwaway Postgres database and Redis key prefix per test."""

from __future__ import annotations

import uuid

import pytest

ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"


def postgres_up() -> bool:
    """Is the local Postgres reachable?"""
    import psycopg

    try:
        psycopg.connect(ADMIN_URL, connect_timeout=2).close()
        return True
    except psycopg.Error:
        return False


def redis_up() -> bool:
    """Is the local Redis reachable?"""
    import redis

    try:
        return bool(redis.Redis(socket_connect_timeout=2).ping())
    except redis.RedisError:
        return False


@pytest.fixture
def pg_url():
    """A fresh database (dropped after the test), as a SQLAlchemy URL."""
    if not postgres_up():
        pytest.skip("Postgres is not running on 127.0.0.1:5432 (.ci/run starts it)")
    from soc_agent.fleet.postgres import temporary_database

    with temporary_database(ADMIN_URL) as url:
        yield url


@pytest.fixture
def broker_config():
    """A broker config with its own key prefix (every key deleted after the test); short timeouts."""
    if not redis_up():
        pytest.skip("Redis is not running on 127.0.0.1:6379 (.ci/run starts it)")
    from soc_agent.fleet.broker import Broker, BrokerConfig

    config = BrokerConfig(prefix=f"soctest-{uuid.uuid4().hex[:8]}", partitions=4, lease_ms=4000,
                          claim_idle_ms=1500, max_attempts=3)
    yield config
    Broker(config).drop()
