"""Imports belong at the top of a module; one inside a function body says why it waits.

A function-body import is accepted with a ``# deferred: <reason>`` comment on its own line(s), or in the
comment lines directly above the contiguous run of imports it belongs to (one comment for the block).
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("soc_agent", "connectors", "evals")
MARKER = re.compile(r"#\s*deferred:\s*\S")
FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)
IMPORTS = (ast.Import, ast.ImportFrom)


def _import_runs(tree: ast.AST) -> list[list[ast.stmt]]:
    """Every run of adjacent import statements in a statement list that lies inside a function body."""
    runs: list[list[ast.stmt]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        inside = in_function or isinstance(node, FUNCTIONS)
        for field in ("body", "orelse", "finalbody", "handlers", "cases"):
            block = getattr(node, field, None)
            if not isinstance(block, list) or not inside:
                continue
            run: list[ast.stmt] = []
            for statement in block:
                if isinstance(statement, IMPORTS):
                    run.append(statement)
                    continue
                if run:
                    runs.append(run)
                run = []
            if run:
                runs.append(run)
        for child in ast.iter_child_nodes(node):
            visit(child, inside)

    visit(tree, False)
    return runs


def _comments(source: str) -> tuple[dict[int, str], set[int]]:
    """Comment text by line, and the lines that hold nothing but a comment."""
    comments: dict[int, str] = {}
    code_lines: set[int] = set()
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            comments[token.start[0]] = token.string
        elif token.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT,
                                tokenize.ENDMARKER):
            code_lines.update(range(token.start[0], token.end[0] + 1))
    return comments, set(comments) - code_lines


def unexplained_imports(source: str) -> list[int]:
    """The lines of the function-body imports in ``source`` that carry no ``# deferred:`` reason."""
    comments, comment_only = _comments(source)
    missing = []
    for run in _import_runs(ast.parse(source)):
        above, line = False, run[0].lineno - 1
        while line in comment_only:  # the comment lines directly above the run
            above = above or bool(MARKER.match(comments[line]))
            line -= 1
        for statement in run:
            own = any(MARKER.search(comments.get(n, "")) for n in range(statement.lineno, statement.end_lineno + 1))
            if not (above or own):
                missing.append(statement.lineno)
    return sorted(missing)


def _modules() -> list[Path]:
    return sorted(path for package in PACKAGES for path in (ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("path", _modules(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_function_body_import_says_why_it_is_deferred(path: Path):
    missing = unexplained_imports(path.read_text(encoding="utf-8"))
    where = [f"{path.relative_to(ROOT).as_posix()}:{line}" for line in missing]
    assert where == [], "import at the top of the module, or say why not with '# deferred: <reason>'"


def test_the_checker_finds_the_packages():
    assert len(_modules()) > 100


def test_an_import_without_a_reason_is_named_by_its_line():
    source = ("import os\n"
              "\n"
              "def f():\n"
              "    import json\n"
              "    return json, os\n"
              "\n"
              "class C:\n"
              "    async def g(self):\n"
              "        if self:\n"
              "            from re import compile  # here, because\n"
              "        return lambda: __import__('x')\n")
    assert unexplained_imports(source) == [4, 10]


def test_a_trailing_reason_covers_its_own_statement_only():
    source = ("def f():\n"
              "    from json import (  # deferred: the parser is not needed at start-up\n"
              "        dumps,\n"
              "        loads)\n"
              "    import re\n"
              "    return dumps, loads, re\n")
    assert unexplained_imports(source) == [5]


def test_a_reason_above_covers_the_whole_contiguous_run():
    source = ("def f():\n"
              "    x = 1\n"
              "    # deferred: loads the graph library,\n"
              "    # which `--help` must not\n"
              "    import json\n"
              "\n"
              "    from re import compile\n"
              "    y = 2\n"
              "    import csv\n"
              "    return json, compile, csv, x, y\n")
    assert unexplained_imports(source) == [9]


def test_a_marker_must_give_a_reason_and_sit_directly_above():
    source = ("def f():\n"
              "    # deferred:\n"
              "    import json\n"
              "    # deferred: a reason\n"
              "\n"
              "    import re\n"
              "    return json, re\n")
    assert unexplained_imports(source) == [3, 6]


def test_module_level_and_type_checking_imports_need_no_reason():
    source = ("from typing import TYPE_CHECKING\n"
              "import json\n"
              "if TYPE_CHECKING:\n"
              "    from re import Pattern\n"
              "try:\n"
              "    import fcntl\n"
              "except ImportError:\n"
              "    fcntl = None\n"
              "class C:\n"
              "    import csv\n")
    assert unexplained_imports(source) == []
