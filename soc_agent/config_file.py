"""One error and one YAML reader for every configuration file soc-agent loads.

A configuration problem names where it is, the way a compiler does::

    playbooks/policy.yml:14: tiers.contain_hard.min_confidence: Input should be a valid number

one line per problem; a problem with the file as a whole (it cannot be read,
it is not a mapping) has no line. Every loader raises :class:`ConfigError` or
a subclass named for its file (``PlaybookError``, ``PolicyError``,
``GenericMappingError``, ``TokenFileError``, ``WebhookConfigError``, the
connectors' ``ConfigError``), so ``except ConfigError`` catches all of them
and the CLI prints one as its lines and exit status 2, not as a traceback.

Bad *input records* are not configuration: they are dead-lettered
(``connectors.base.MappingError``) and never raise this.

Messages quote keys and pydantic's descriptions of what is wrong, never the
values in the file: a tokens or connectors file may hold a pasted secret.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

__all__ = ["ConfigError", "Location", "YamlDocument", "parse_yaml", "read_yaml"]

Location = tuple[Any, ...]
"""Where in a document something is: mapping keys and sequence indexes, the shape of a pydantic error's ``loc``."""

_Model = TypeVar("_Model")


class ConfigError(ValueError):
    """A configuration file or setting that cannot be used.

    ``str()`` is ``file:line: problem``, one line per problem when there are
    several; ``file`` and ``line`` hold the first problem's location (``line``
    is 0 when the problem has none: an unreadable file, an environment
    variable).
    """

    # Class-level defaults: a subclass that also derives from another error
    # (the connectors' ConfigError) runs that error's __init__, not this one's.
    file: str = ""
    """The file (or setting) the problem is in."""
    line: int = 0
    """The first problem's 1-based line; 0 when it has none."""

    def __init__(self, message: str, *, file: str = "", line: int = 0) -> None:
        super().__init__(message)
        self.file = file
        self.line = line

    @classmethod
    def at(cls, file: str | Path, line: int, problem: str) -> ConfigError:
        """One problem at ``file:line`` (``line`` 0: the file as a whole)."""
        return cls.listing(file, [(line, problem)])

    @classmethod
    def listing(cls, file: str | Path, problems: Sequence[tuple[int, str]]) -> ConfigError:
        """Several problems in one file, in line order."""
        file = str(file)
        ordered = sorted(problems, key=lambda problem: problem[0])
        message = "\n".join(f"{_where(file, line)}: {text}" for line, text in ordered)
        return cls(message, file=file, line=ordered[0][0] if ordered else 0)


def _where(file: str, line: int) -> str:
    return f"{file}:{line}" if line else file


@dataclass(frozen=True)
class YamlDocument:
    """A parsed YAML file: its plain data and the line each key and item starts on."""

    file: str
    """The file name errors quote."""
    data: Any
    """The document as plain Python data (None for an empty file)."""
    lines: Mapping[Location, int] = field(repr=False)
    """The 1-based line of every mapping key and sequence item, by location; ``()`` is the document's."""
    error: type[ConfigError] = ConfigError
    """The error class this file's problems are raised as."""

    def line_of(self, loc: Location) -> int:
        """The line of ``loc``, or of the nearest enclosing key or item when ``loc`` itself is not in the file
        (a missing key is reported where its mapping starts)."""
        for end in range(len(loc), -1, -1):
            if tuple(loc[:end]) in self.lines:
                return self.lines[tuple(loc[:end])]
        return 1

    def fail(self, loc: Location, problem: str) -> ConfigError:
        """The error for ``problem`` at ``loc``, naming the key path (``rules.2.when: ...``)."""
        return self.error.at(self.file, self.line_of(loc), f"{_dotted(loc)}: {problem}" if loc else problem)

    def mapping(self) -> dict[Any, Any]:
        """The document as a mapping (an empty file is an empty mapping); any other document is an error."""
        if self.data is None:
            return {}
        if not isinstance(self.data, dict):
            raise self.error.at(self.file, self.lines.get((), 1), f"expected a mapping, found {_kind(self.data)}")
        return self.data

    def validate(self, model: type[_Model], loc: Location = (), data: Any = ...) -> _Model:
        """``model.model_validate`` of the data at ``loc`` (or ``data``, which sits at ``loc``), every pydantic
        problem raised at its own line."""
        from pydantic import ValidationError  # deferred: the edge sensor imports this module and never pydantic

        value = self.at(loc) if data is ... else data
        try:
            return model.model_validate(value)  # type: ignore[attr-defined]
        except ValidationError as exc:
            problems = []
            for err in exc.errors():
                where = tuple(loc) + tuple(err["loc"])
                problems.append((self.line_of(where), f"{_dotted(where) or 'document'}: {describe(err)}"))
            raise self.error.listing(self.file, problems) from None

    def at(self, loc: Location) -> Any:
        """The data at ``loc`` (None when any step is missing)."""
        value = self.data
        for step in loc:
            try:
                value = value[step]
            except (KeyError, IndexError, TypeError):
                return None
        return value


def describe(err: Mapping[str, Any]) -> str:
    """A pydantic error's message without its input (which may be a secret), in an author's words."""
    if err.get("type") == "extra_forbidden":
        return "unknown key"
    if err.get("type") == "missing":
        return "required key is missing"
    return str(err.get("msg", "invalid")).removeprefix("Value error, ")


def read_yaml(path: str | Path, error: type[ConfigError] = ConfigError) -> YamlDocument:
    """Read and parse one YAML file; an unreadable file or invalid YAML raises ``error`` at its line."""
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise error.at(file, 0, f"cannot read: {exc.strerror or type(exc).__name__}") from None
    except UnicodeDecodeError:
        raise error.at(file, 0, "cannot read: not UTF-8 text") from None
    return parse_yaml(text, file, error)


def parse_yaml(text: str, file: str = "<text>", error: type[ConfigError] = ConfigError) -> YamlDocument:
    """Parse YAML text into a :class:`YamlDocument`; a duplicate key is an error (PyYAML would silently keep
    the last one, and a silently ignored setting is worse than a refused file)."""
    loader = yaml.SafeLoader(text)
    lines: dict[Location, int] = {}
    try:
        root = loader.get_single_node()
        data = None if root is None else _to_python(root, (), lines, loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        # The problem only: the full message quotes the offending line, which may hold a secret.
        problem = exc.problem or type(exc).__name__
        raise error.at(file, mark.line + 1 if mark else 1, f"invalid YAML: {problem}") from None
    except yaml.YAMLError as exc:
        raise error.at(file, 1, f"invalid YAML: {type(exc).__name__}") from None
    except _Located as exc:
        raise error.at(file, exc.line, exc.problem) from None
    finally:
        loader.dispose()
    lines.setdefault((), 1)
    return YamlDocument(file=file, data=data, lines=lines, error=error)


class _Located(Exception):
    """A problem found while building the data, before the file name is attached."""

    def __init__(self, line: int, problem: str) -> None:
        super().__init__(problem)
        self.line = line
        self.problem = problem


def _to_python(node: yaml.Node, path: Location, lines: dict[Location, int], loader: yaml.SafeLoader) -> Any:
    """Build plain data from a composed node, recording each path's line.

    A mapping entry is recorded at its *key's* line: for a block value such as
    ``target:`` followed by indented keys, that is the line an author looks at.
    """
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)  # YAML merge keys (<<: *anchor), as safe_load would apply them
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            key_line = key_node.start_mark.line + 1
            try:
                duplicate = key in out
            except TypeError:
                raise _Located(key_line, "mapping keys must be scalars") from None
            if duplicate:
                raise _Located(key_line, f"duplicate key {key!r}")
            lines[path + (key,)] = key_line
            out[key] = _to_python(value_node, path + (key,), lines, loader)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_to_python(item, path + (i,), lines, loader) for i, item in enumerate(node.value)]
    return loader.construct_object(node, deep=True)


def _dotted(loc: Location) -> str:
    return ".".join(str(step) for step in loc)


def _kind(value: Any) -> str:
    return {list: "a list", str: "text", int: "a number", float: "a number", bool: "true/false"}.get(
        type(value), type(value).__name__)
