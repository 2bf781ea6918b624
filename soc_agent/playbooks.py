"""Playbooks: YAML files that say which responses fit which cases.

One playbook per file. The plan node asks a :class:`PlaybookSet` for the
first playbook (by priority) whose ``when`` holds for a case, then for the
first response whose ``when`` holds (``choose``) or all of them (``menu``,
what a reasoner may pick from). Conditions are CEL expressions evaluated over
a plain dict the plan node builds (rules, severity, entities, attrs, verdict,
confidence...).

Errors are split in two on purpose:

* A broken playbook is a *load* error: :class:`PlaybookError`, whose message
  starts with ``file:line`` of the offending key or list item. Every CEL
  expression is compiled at load time, every action is checked against the
  catalog, and a contain action without a fitting target is refused, so a bad
  playbook never reaches a live case.
* A case the expression cannot evaluate (a missing key, a value of the wrong
  type) is *not* an error: that condition simply does not hold. Alert
  attributes are attacker-controlled, so evaluation must never raise.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import cel
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from soc_agent.actions import CATALOG, TTL_ACTIONS
from soc_agent.config_file import ConfigError, read_yaml
from soc_agent.context import cel_context
from soc_agent.types import Entity, EntityKind

__all__ = [
    "Playbook",
    "PlaybookError",
    "PlaybookSet",
    "Response",
    "TargetSelector",
    "load_playbook",
    "load_playbooks",
]

# Files in the playbooks directory that other components own.
NOT_PLAYBOOKS = frozenset({"policy.yml", "detectors.yml", "autonomy.yml", "evidence.yml", "pdp-policy.yml"})

_SNAKE_CASE = r"^[a-z][a-z0-9_]*$"

class PlaybookError(ConfigError):
    """A playbook file that cannot be loaded.

    The message starts with ``file:line`` (one line per problem when a file
    has several); ``file`` and ``line`` hold the first problem's location.
    """


def _check_cel(source: str) -> str:
    try:
        cel.compile(source)
    except Exception as exc:  # the binding reports syntax errors as ValueError, others vary
        raise ValueError(f"invalid CEL expression {source!r}: {exc}") from None
    return source


def _cel_source(value: Any) -> Any:
    # Unquoted `when: true` is a YAML bool; accept it rather than make authors quote it.
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


class TargetSelector(BaseModel):
    """Which of the case's entities a response acts on: a kind, optionally a role."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: EntityKind
    role: str | None = None


class Response(BaseModel):
    """One candidate response: an action from the catalog and when it applies.

    ``target`` is required exactly when the catalog gives the action a
    ``target_kind``, and must have that kind. TTL'd actions (``block_ip``...)
    must carry a positive ``params.ttl_seconds``: permanent blocks do not exist.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    when: str = Field(description="CEL condition over the plan context")
    action: str = Field(description="a name from soc_agent.actions.CATALOG")
    # validate_default so a *missing* target still reaches the check below.
    target: TargetSelector | None = Field(default=None, validate_default=True)
    params: dict[str, Any] = Field(default_factory=dict, validate_default=True)

    _when_source = field_validator("when", mode="before")(_cel_source)

    @field_validator("when")
    @classmethod
    def _compiles(cls, value: str) -> str:
        return _check_cel(value)

    @field_validator("action")
    @classmethod
    def _in_catalog(cls, value: str) -> str:
        if value not in CATALOG:
            raise ValueError(f"unknown action {value!r}; known: {', '.join(sorted(CATALOG))}")
        return value

    @field_validator("target")
    @classmethod
    def _fits_action(cls, value: TargetSelector | None, info: ValidationInfo) -> TargetSelector | None:
        action = info.data.get("action")
        if action is None:  # the action itself was invalid; that error is enough
            return value
        want = CATALOG[action].target_kind
        if want is None and value is not None:
            raise ValueError(f"action {action!r} takes no target")
        if want is not None and value is None:
            raise ValueError(f"action {action!r} needs a target of kind {want.value!r}")
        if want is not None and value is not None and value.kind != want:
            raise ValueError(f"action {action!r} targets kind {want.value!r}, not {value.kind.value!r}")
        return value

    @field_validator("params")
    @classmethod
    def _ttl_present(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        action = info.data.get("action")
        if action in TTL_ACTIONS:
            ttl = value.get("ttl_seconds")
            if isinstance(ttl, bool) or not isinstance(ttl, int) or ttl <= 0:
                raise ValueError(f"action {action!r} needs params.ttl_seconds, a positive integer")
        return value


class Playbook(BaseModel):
    """A playbook: when it applies to a case and its ordered responses.

    ``source`` is ``file:line`` of the playbook, set by the loader (empty for
    playbooks built in code).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=_SNAKE_CASE, description="unique across all playbooks")
    title: str = Field(min_length=1)
    incident_class: str = Field(pattern=_SNAKE_CASE, description="the class evals report")
    priority: int = Field(ge=0, strict=True, description="lower is tried first")
    when: str = Field(description="CEL condition: does this playbook apply to the case?")
    responses: list[Response] = Field(min_length=1, description="ordered; the first that holds wins")
    source: str = ""

    _when_source = field_validator("when", mode="before")(_cel_source)

    @field_validator("when")
    @classmethod
    def _compiles(cls, value: str) -> str:
        return _check_cel(value)


# --- loading -----------------------------------------------------------------


def load_playbook(path: Path) -> Playbook:
    """Load and validate one playbook file.

    Raises :class:`PlaybookError` naming ``file:line`` for bad YAML, unknown
    or missing keys, bad CEL, unknown actions and targets that do not fit.
    """
    doc = read_yaml(path, PlaybookError)
    if doc.data is None:
        raise PlaybookError.at(doc.file, 1, "empty file; expected one playbook")
    if not isinstance(doc.data, dict):
        raise PlaybookError.at(doc.file, 1, "a playbook must be a mapping")
    if "source" in doc.data:
        raise PlaybookError.at(doc.file, doc.line_of(("source",)), "'source' is set by the loader, not the file")
    playbook = doc.validate(Playbook)
    return playbook.model_copy(update={"source": f"{doc.file}:{doc.line_of(())}"})


def load_playbooks(directory: Path) -> list[Playbook]:
    """Load every ``*.yml`` playbook in ``directory``, sorted by (priority, name).

    ``policy.yml``, ``detectors.yml``, ``evidence.yml``, ``autonomy.yml`` and ``pdp-policy.yml`` (the decision
    point's) are skipped (other components own them). A name used by two files is a :class:`PlaybookError` naming the
    second file's ``name:`` line and the first file.
    """
    if not directory.is_dir():
        raise PlaybookError.at(directory, 0, "not a directory")
    playbooks: list[Playbook] = []
    seen: dict[str, Playbook] = {}
    for path in sorted(directory.glob("*.yml")):
        if path.name in NOT_PLAYBOOKS:
            continue
        playbook = load_playbook(path)
        if playbook.name in seen:
            raise PlaybookError.at(path, read_yaml(path, PlaybookError).line_of(("name",)),
                                   f"duplicate playbook name {playbook.name!r}, first defined at "
                                   f"{seen[playbook.name].source}")
        seen[playbook.name] = playbook
        playbooks.append(playbook)
    return sorted(playbooks, key=lambda p: (p.priority, p.name))


# --- evaluation ----------------------------------------------------------------


class PlaybookSet:
    """Playbooks in priority order, with every CEL program compiled once.

    Evaluation never raises: a condition that errors on a case (a missing
    key, a value of an unexpected type) does not hold, and only an exact
    boolean ``true`` counts as holding.
    """

    def __init__(self, playbooks: Iterable[Playbook]) -> None:
        self._playbooks = sorted(playbooks, key=lambda p: (p.priority, p.name))
        names = [p.name for p in self._playbooks]
        if len(names) != len(set(names)):
            raise ValueError(f"duplicate playbook names in {names}")
        self._programs: dict[str, cel.Program] = {}
        for playbook in self._playbooks:
            for source in [playbook.when, *(r.when for r in playbook.responses)]:
                if source not in self._programs:
                    self._programs[source] = cel.compile(source)

    @classmethod
    def from_directory(cls, directory: Path) -> PlaybookSet:
        """Load a directory with :func:`load_playbooks` and build the set."""
        return cls(load_playbooks(directory))

    @property
    def playbooks(self) -> list[Playbook]:
        """The playbooks, in the order ``match`` tries them."""
        return list(self._playbooks)

    def get(self, name: str) -> Playbook | None:
        """The playbook with this name, if any."""
        return next((p for p in self._playbooks if p.name == name), None)

    def holds(self, source: str, ctx: dict[str, Any] | cel.Context) -> bool:
        """Whether a CEL condition is exactly ``true`` for ``ctx``; never raises."""
        program = self._programs.get(source)
        try:
            if program is None:  # a Response built in code, not from this set
                program = self._programs[source] = cel.compile(source)
            return program.execute(ctx) is True
        except (KeyboardInterrupt, SystemExit):
            raise
        # BaseException, not Exception: a panic inside the Rust binding surfaces as
        # pyo3's PanicException, and one odd case must not take the agent down.
        except BaseException:
            return False

    def match(self, ctx: dict[str, Any] | cel.Context) -> Playbook | None:
        """The first playbook (by priority, then name) whose ``when`` holds."""
        ctx = cel_context(ctx)
        return next((p for p in self._playbooks if self.holds(p.when, ctx)), None)

    def menu(
        self, playbook: Playbook, ctx: dict[str, Any] | cel.Context, entities: Sequence[Entity] | None = None,
        new: Sequence[Entity] = (),
    ) -> list[Response]:
        """Every response whose ``when`` holds, in playbook order.

        With ``entities`` (the case's), responses whose target cannot be
        resolved are left out, so nothing on the menu lacks a target.
        """
        return list(self._eligible(playbook, ctx, entities, new))

    def choose(
        self, playbook: Playbook, ctx: dict[str, Any] | cel.Context, entities: Sequence[Entity] | None = None,
        new: Sequence[Entity] = (),
    ) -> Response | None:
        """The first response whose ``when`` holds (and, with ``entities``, whose target resolves)."""
        return next(self._eligible(playbook, ctx, entities, new), None)

    def _eligible(
        self, playbook: Playbook, ctx: dict[str, Any] | cel.Context, entities: Sequence[Entity] | None,
        new: Sequence[Entity] = (),
    ) -> Iterator[Response]:
        ctx = cel_context(ctx)
        for response in playbook.responses:
            if not self.holds(response.when, ctx):
                continue
            if entities is not None and response.target is not None:
                if self.resolve_target(response, entities, new) is None:
                    continue
            yield response

    @staticmethod
    def resolve_target(response: Response, case_entities: Sequence[Entity],
                       new: Sequence[Entity] = ()) -> Entity | None:
        """The entity a response acts on; None if there is none of the selector's kind (and role).

        ``new`` are the entities of the alert that triggered the run: the new
        evidence is what the run acts on, so the first fitting one of those
        wins, and the case's entities are the fallback only when the new
        alert has none of the kind (a second LOLBin alert kills its own
        process, not the first alert's).
        """
        selector = response.target
        if selector is None:
            return None
        return next(
            (
                e for e in (*new, *case_entities)
                if e.kind == selector.kind and (selector.role is None or e.role == selector.role)
            ),
            None,
        )
