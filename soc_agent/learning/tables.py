"""Tables for learned state: priors, calibration maps, and which dispositions were already learned.

They live on ``SQLModel.metadata`` like the core tables and are created by
``make_engine`` (listed in ``soc_agent.store.schema``).
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel


class PriorRow(SQLModel, table=True):
    """How analysts disposed of past alerts of one detection rule or about one entity.

    Counts are exponentially decayed weights as of ``as_of``: an alert
    ``half_life`` older counts half. ``n_raw`` is the undecayed count.
    """

    __tablename__ = "learning_priors"

    scope: str = Field(primary_key=True, description="rule | entity")
    key: str = Field(primary_key=True, description="rule id, or entity key kind:value")
    tp: float = 0.0
    bp: float = 0.0
    fp: float = 0.0
    n_raw: int = 0
    as_of: datetime


class CalibrationRow(SQLModel, table=True):
    """A fitted confidence map for one verdict: monotone points (raw, calibrated, weight) as JSON."""

    __tablename__ = "learning_calibration"

    verdict: str = Field(primary_key=True)
    points: str = Field(description="JSON list of [raw_confidence, calibrated, weight]")
    n: int = 0
    ece_before: float | None = None
    fitted_at: datetime


class LearnedLabelRow(SQLModel, table=True):
    """A disposition already folded into the priors, so importing it again changes nothing."""

    __tablename__ = "learning_labels"

    alert_id: str = Field(primary_key=True)
    label: str
    rule_id: str
    source: str = Field(description="labels file, webhook, queue...")
    learned_at: datetime


class TrainingExampleRow(SQLModel, table=True):
    """One analyst disposition with the generic features of its alert, for training the triage model.

    Features are extracted once, when the disposition is learned, so a
    retrain reads these rows and never re-parses old alerts.
    """

    __tablename__ = "learning_examples"

    alert_id: str = Field(primary_key=True)
    label: str
    ts: datetime
    features: str = Field(description="JSON of soc_agent.learning.model.alert_features")


class ModelRow(SQLModel, table=True):
    """A versioned triage model artefact: LightGBM's text model plus its encoders and calibration, as JSON.

    Text only: nothing here is unpickled, so a row an attacker could write cannot run code.
    ``active`` marks the one the product serves.
    """

    __tablename__ = "learning_models"

    version: int | None = Field(default=None, primary_key=True)
    created_at: datetime
    examples: int
    cv_macro_f1: float
    cv_ece: float
    active: bool = False
    artefact: str = Field(description="JSON: booster text, vocabularies, history counts, calibration maps")
