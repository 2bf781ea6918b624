"""Run configuration: where things live and how the pipeline behaves.

Everything has a working default so ``soc-agent demo`` runs from a fresh
clone; every field can be set from the environment (``SOC_AGENT_<FIELD>``).
Secrets never live here: connectors read theirs from the environment.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

from pydantic import BaseModel, Field

from soc_agent.types import RunMode

REPO_ROOT = Path(__file__).resolve().parent.parent
"""The checkout root: default playbooks and demo data are found relative to it."""
DEMO_AUTONOMY = REPO_ROOT / "demo" / "autonomy.yml"
"""The autonomy the demo environment earned; ``demo`` and ``eval`` use it, a fresh install has none."""


class Settings(BaseModel):
    """How one soc-agent process runs."""

    workdir: Path = Field(default=Path("./soc-agent-work"), description="store, checkpoints and notes go here")
    database_url: str | None = Field(
        default=None, description="any SQLAlchemy URL; default: SQLite file in workdir"
    )
    mode: RunMode | None = Field(default=None, description="overrides the policy's mode when set")
    playbooks_dir: Path = Field(default=REPO_ROOT / "playbooks", description="playbooks, policy.yml, detectors.yml")
    data_dir: Path = Field(
        default=REPO_ROOT / "demo" / "data",
        description="assets.yml, identities.yml, intel.yml, allowlists.yml for the local enrichers",
    )
    enricher_timeout_s: float = Field(default=0.5, description="per-enricher budget; past it the evidence degrades")
    correlation_window_s: int = Field(
        default=3600, description="an alert joins an open case that shares an entity seen within this window"
    )
    reasoner: str = Field(default="deterministic", pattern="^(deterministic|llm)$",
                          description="llm uses the SOC_AGENT_LLM_* endpoint settings, with the deterministic "
                          "reasoner as fallback and check")
    to_broker: bool = Field(default=False, description="`soc-agent serve` publishes submitted alerts to the Redis "
                            "Streams broker (SOC_AGENT_REDIS_URL, SOC_AGENT_BROKER_*) for `soc-agent worker`s "
                            "instead of triaging them in the server")
    run_batch_size: int = Field(default=16, ge=1, le=4096,
                                description="a stream's queued case runs go through the graph together, at most "
                                "this many at once (1 with the llm reasoner)")
    run_batch_delay_ms: int = Field(default=25, ge=0, le=60_000,
                                    description="a stream runs its queue once its oldest run has waited this long; "
                                    "a run a threshold opened never waits")
    audit_hmac_key: str | None = Field(default=None, description="optional key; set from SOC_AGENT_AUDIT_HMAC_KEY")
    audit_signing_key_file: Path | None = Field(
        default=None, description="Ed25519 key signing the audit checkpoints (SOC_AGENT_AUDIT_SIGNING_KEY_FILE); "
        "default <workdir>/audit-signing.key, created 0600 on first use. In production keep it on another volume "
        "or in a secret store: whoever reads it can forge checkpoints")
    max_alert_bytes: int = Field(default=256 * 1024, description="larger input lines are dead-lettered")
    max_clock_skew_s: int = Field(default=300, description="alerts further in the future are dead-lettered")
    oldest_alert_days: int = Field(default=365, description="the live window: an older alert is triaged "
                                   "record-only (a case, a verdict, a note; nothing executed), never dead-lettered")
    autonomy_file: Path | None = Field(
        default=None, description="earned autonomy per incident class; default autonomy.yml beside policy.yml. "
        "Without one the install runs supervised: nothing above observe runs without a person")

    def is_stale(self, when: datetime) -> bool:
        """Older than the live window: triaged, never acted on."""
        return when < datetime.now(timezone.utc) - timedelta(days=self.oldest_alert_days)

    def autonomy_in_force(self) -> str:
        """One line saying which autonomy applies, for ``triage`` and ``serve`` to print at start."""
        path = self.autonomy_file or self.playbooks_dir / "autonomy.yml"
        if path.exists():
            return f"autonomy: earned per class in {path}"
        return "autonomy: none earned (no autonomy.yml): supervised, nothing above observe runs without a person"

    @property
    def audit_key(self) -> bytes | None:
        """The audit HMAC key as bytes, None when none is set."""
        return self.audit_hmac_key.encode() if self.audit_hmac_key else None

    @property
    def db_url(self) -> str:
        """The store's URL: the configured one or SQLite in the workdir."""
        return self.database_url or f"sqlite:///{self.workdir / 'soc-agent.db'}"

    @property
    def checkpoint_path(self) -> Path:
        """The SQLite file LangGraph's checkpointer uses in embedded mode."""
        return self.workdir / "checkpoints.db"

    @property
    def notes_dir(self) -> Path:
        """Where rendered case notes (markdown) are written."""
        return self.workdir / "notes"

    @classmethod
    def from_env(cls, **overrides: object) -> "Settings":
        """Defaults, then ``SOC_AGENT_*`` variables, then explicit overrides (CLI flags)."""
        values: dict[str, object] = {}
        for name in cls.model_fields:
            env = os.environ.get(f"SOC_AGENT_{name.upper()}")
            if env is not None:
                values[name] = env
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)
