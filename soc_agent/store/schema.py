"""The schema: every table of every wing, on one ``MetaData``.

Each wing declares its tables in a ``tables`` module that imports nothing of
the core but SQLModel, so the store never imports upward; this module is the
one list of them. ``make_engine`` creates the tables registered on
``SQLModel.metadata``, so processes that open the store (the composition
root, the CLI, the servers) and ``migrations/env.py`` import this module
first. The fleet's inbox and resume tables are not listed: importing them
loads the fleet package (broker and worker), so the fleet and the migrations
import ``soc_agent.fleet.tables`` themselves.
"""

from __future__ import annotations

from sqlalchemy import MetaData
from sqlmodel import SQLModel

from connectors import cursors
from soc_agent import audit
from soc_agent.edge import tables as edge_tables
from soc_agent.learning import tables as learning_tables
from soc_agent.pdp import tables as pdp_tables
from soc_agent.runners import tables as runner_tables
from soc_agent.store import tables as store_tables

WINGS = (store_tables, audit, learning_tables, runner_tables, edge_tables, cursors, pdp_tables)
"""The modules whose tables make up the schema, the core's first."""

metadata: MetaData = SQLModel.metadata
"""The one ``MetaData`` every table above is registered on (Alembic's ``target_metadata``)."""

__all__ = ["WINGS", "metadata"]
