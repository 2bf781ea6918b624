"""A fast path for the policy's CEL conditions: the common subset compiled to Python closures.

Why: the CEL binding (``import cel``) runs a compiled program in under a
microsecond, but handing it a call's variables costs 30-60 µs per call
(every nested map and string is converted into CEL values), more than the
decision point's whole budget (p99 50 µs). Conditions written in the subset
below are compiled once, at load, to closures that read the Python values
directly; anything else falls back to the binding, with the CEL context built
once per call and only when such a condition is reached.

The subset: literals (int, double, string, bool, null, lists), variables and
field selection, ``[...]`` indexing, ``! && || == != < <= > >= in``,
``size(x)`` / ``x.size()``, ``has(x.f)``, and the string methods
``startsWith``, ``endsWith``, ``contains`` and ``matches`` (with a literal
pattern). Semantics follow CEL where the two could differ: ``&&`` and ``||``
absorb errors (``false && error`` is false, ``true || error`` is true),
a missing key is an error, values of different types are never equal,
ordering needs two numbers or two strings, and anything else is an error.
Each compiled condition is checked against the binding (the reference) by
the tests, on the shipped policy and on random inputs.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

__all__ = ["CelError", "Unsupported", "compile_fast"]

Fn = Callable[[dict[str, Any]], Any]


class CelError(Exception):
    """Evaluation error (CEL's error value): a condition that errs counts as holding (fail closed)."""


class Unsupported(Exception):
    """The expression is outside the fast subset: use the CEL binding."""


_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<num>\d+\.\d*(?:[eE][+-]?\d+)?|\d+[eE][+-]?\d+|\.\d+|\d+)
  | (?P<str>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')
  | (?P<op>&&|\|\||==|!=|<=|>=|[<>!().,\[\]])
  | (?P<id>[A-Za-z_][A-Za-z0-9_]*)
""", re.VERBOSE)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'"}


def _tokens(source: str) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    pos = 0
    while pos < len(source):
        m = _TOKEN.match(source, pos)
        if m is None:
            raise Unsupported(f"character {source[pos]!r}")
        pos = m.end()
        kind = m.lastgroup
        text = m.group()
        if kind == "ws":
            continue
        if kind == "num":
            out.append(("lit", float(text) if any(c in text for c in ".eE") else int(text)))
        elif kind == "str":
            body = text[1:-1]
            if "\\" in body:
                chars, i = [], 0
                while i < len(body):
                    if body[i] == "\\":
                        nxt = body[i + 1]
                        if nxt not in _ESCAPES:
                            raise Unsupported(f"escape \\{nxt}")
                        chars.append(_ESCAPES[nxt])
                        i += 2
                    else:
                        chars.append(body[i])
                        i += 1
                body = "".join(chars)
            out.append(("lit", body))
        elif kind == "id":
            if text in ("true", "false"):
                out.append(("lit", text == "true"))
            elif text == "null":
                out.append(("lit", None))
            elif text == "in":
                out.append(("op", "in"))
            else:
                out.append(("id", text))
        else:
            out.append(("op", text))
    out.append(("end", None))
    return out


def _category(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "num"
    if isinstance(value, str):
        return "str"
    if isinstance(value, (list, tuple)):
        return "list"
    if isinstance(value, dict):
        return "map"
    return type(value).__name__


def _eq(a: Any, b: Any) -> bool:
    ca, cb = _category(a), _category(b)
    if ca != cb:
        return False
    if ca == "list":
        return len(a) == len(b) and all(_eq(x, y) for x, y in zip(a, b))
    if ca == "map":
        return a.keys() == b.keys() and all(_eq(a[k], b[k]) for k in a)
    return a == b


_NUM = (int, float)


def _ordered(a: Any, b: Any) -> None:
    ca, cb = _category(a), _category(b)
    if ca != cb or ca not in ("num", "str"):
        raise CelError("no ordering between these types")


class _Parser:
    def __init__(self, source: str) -> None:
        self.toks = _tokens(source)
        self.i = 0

    def peek(self) -> tuple[str, Any]:
        return self.toks[self.i]

    def take(self) -> tuple[str, Any]:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def expect(self, op: str) -> None:
        kind, value = self.take()
        if kind != "op" or value != op:
            raise Unsupported(f"expected {op!r}")

    def parse(self) -> Fn:
        fn = self.or_()
        if self.peek()[0] != "end":
            raise Unsupported("trailing input")
        return fn

    def or_(self) -> Fn:
        left = self.and_()
        while self.peek() == ("op", "||"):
            self.take()
            left = _or(left, self.and_())
        return left

    def and_(self) -> Fn:
        left = self.rel()
        while self.peek() == ("op", "&&"):
            self.take()
            left = _and(left, self.rel())
        return left

    def rel(self) -> Fn:
        left = self.unary()
        kind, op = self.peek()
        if kind == "op" and op in ("==", "!=", "<", "<=", ">", ">=", "in"):
            self.take()
            right = self.unary()
            return _binary(op, left, right)
        return left

    def unary(self) -> Fn:
        if self.peek() == ("op", "!"):
            self.take()
            inner = self.unary()

            def not_(v: dict[str, Any]) -> bool:
                x = inner(v)
                if x is True:
                    return False
                if x is False:
                    return True
                raise CelError("! needs a bool")
            return not_
        return self.member()

    def member(self) -> Fn:
        fn = self.primary()
        while True:
            tok = self.peek()
            if tok == ("op", "."):
                self.take()
                kind, name = self.take()
                if kind != "id":
                    raise Unsupported("field name expected")
                if self.peek() == ("op", "("):
                    self.take()
                    args = self.args()
                    fn = _method(fn, name, args)
                else:
                    fn = _select(fn, name)
            elif tok == ("op", "["):
                self.take()
                index = self.or_()
                self.expect("]")
                fn = _index(fn, index)
            else:
                return fn

    def args(self) -> list[Fn]:
        args: list[Fn] = []
        if self.peek() == ("op", ")"):
            self.take()
            return args
        while True:
            args.append(self.or_())
            kind, value = self.take()
            if (kind, value) == ("op", ")"):
                return args
            if (kind, value) != ("op", ","):
                raise Unsupported("expected , or )")

    def primary(self) -> Fn:
        kind, value = self.take()
        if kind == "lit":
            return _literal(value)
        if kind == "op" and value == "(":
            fn = self.or_()
            self.expect(")")
            return fn
        if kind == "op" and value == "[":
            items: list[Fn] = []
            if self.peek() != ("op", "]"):
                while True:
                    items.append(self.or_())
                    k, val = self.take()
                    if (k, val) == ("op", "]"):
                        break
                    if (k, val) != ("op", ","):
                        raise Unsupported("expected , or ]")
            else:
                self.take()
            if all(getattr(f, "const", False) for f in items):
                return _literal([f({}) for f in items])
            return lambda v: [f(v) for f in items]
        if kind == "id":
            if self.peek() == ("op", "("):
                self.take()
                if value == "has":
                    start = self.i
                    self.member()
                    end = self.i
                    self.expect(")")
                    return _has(self.toks[start:end])
                args = self.args()
                if value == "size" and len(args) == 1:
                    return _size(args[0])
                raise Unsupported(f"function {value}")

            def var(v: dict[str, Any], _name: str = value) -> Any:
                try:
                    return v[_name]
                except KeyError:
                    raise CelError(f"undeclared reference to {_name!r}") from None
            return var
        raise Unsupported(f"unexpected {value!r}")


def _literal(value: Any) -> Fn:
    def f(v: dict[str, Any]) -> Any:
        return value
    f.const = True  # type: ignore[attr-defined]
    return f


def _and(a: Fn, b: Fn) -> Fn:
    def f(v: dict[str, Any]) -> bool:
        try:
            x = a(v)
        except CelError:
            x = CelError
        if x is False:
            return False
        try:
            y = b(v)
        except CelError:
            y = CelError
        if y is False:
            return False
        if x is True and y is True:
            return True
        raise CelError("&& needs bools")
    return f


def _or(a: Fn, b: Fn) -> Fn:
    def f(v: dict[str, Any]) -> bool:
        try:
            x = a(v)
        except CelError:
            x = CelError
        if x is True:
            return True
        try:
            y = b(v)
        except CelError:
            y = CelError
        if y is True:
            return True
        if x is False and y is False:
            return False
        raise CelError("|| needs bools")
    return f


def _binary(op: str, a: Fn, b: Fn) -> Fn:
    if op in ("==", "!="):
        negate = op == "!="

        def eq(v: dict[str, Any]) -> bool:
            x, y = a(v), b(v)
            tx = type(x)
            # Same simple type: Python's == is CEL's; anything else goes through the careful path.
            same = x == y if tx is type(y) and (tx is str or tx is int or tx is bool) else _eq(x, y)
            return not same if negate else same
        return eq
    if op == "in":
        def in_(v: dict[str, Any]) -> bool:
            x, y = a(v), b(v)
            if isinstance(y, (list, tuple)):
                return any(_eq(x, item) for item in y)
            if isinstance(y, dict):
                return x in y if isinstance(x, str) else False
            raise CelError("in needs a list or map")
        return in_

    def compare(v: dict[str, Any]) -> bool:
        x, y = a(v), b(v)
        tx, ty = type(x), type(y)
        if not ((tx is ty and (tx is int or tx is float or tx is str)) or (tx in _NUM and ty in _NUM)):
            _ordered(x, y)
        if op == "<":
            return x < y
        if op == "<=":
            return x <= y
        if op == ">":
            return x > y
        return x >= y
    return compare


def _select(obj: Fn, name: str) -> Fn:
    def f(v: dict[str, Any]) -> Any:
        x = obj(v)
        if isinstance(x, dict):
            try:
                return x[name]
            except KeyError:
                raise CelError(f"no such key: {name}") from None
        raise CelError(f"no field {name} on {_category(x)}")
    return f


def _index(obj: Fn, index: Fn) -> Fn:
    def f(v: dict[str, Any]) -> Any:
        x, i = obj(v), index(v)
        if isinstance(x, dict) and isinstance(i, str):
            if i in x:
                return x[i]
            raise CelError(f"no such key: {i}")
        if isinstance(x, (list, tuple)) and isinstance(i, int) and not isinstance(i, bool):
            if 0 <= i < len(x):
                return x[i]
            raise CelError("index out of range")
        raise CelError("bad index")
    return f


def _size(arg: Fn) -> Fn:
    def f(v: dict[str, Any]) -> int:
        x = arg(v)
        if isinstance(x, (str, list, tuple, dict)):
            return len(x)
        raise CelError("size() needs a string, list or map")
    return f


def _has(tokens: list[tuple[str, Any]]) -> Fn:
    # has() takes a field selection e.f: evaluate e, then test for the key.
    if len(tokens) < 3 or tokens[-2] != ("op", ".") or tokens[-1][0] != "id":
        raise Unsupported("has() needs a field selection")
    field = tokens[-1][1]
    inner = _Parser.__new__(_Parser)
    inner.toks, inner.i = list(tokens[:-2]) + [("end", None)], 0
    base = inner.member()
    if inner.peek()[0] != "end":
        raise Unsupported("has() argument")

    def f(v: dict[str, Any]) -> bool:
        x = base(v)
        if isinstance(x, dict):
            return field in x
        raise CelError("has() on a non-map")
    return f


def _method(target: Fn, name: str, args: list[Fn]) -> Fn:
    if name == "size" and not args:
        return _size(target)
    if name in ("startsWith", "endsWith", "contains") and len(args) == 1:
        arg = args[0]
        test = {"startsWith": str.startswith, "endsWith": str.endswith, "contains": str.__contains__}[name]

        def f(v: dict[str, Any]) -> bool:
            s, t = target(v), arg(v)
            if isinstance(s, str) and isinstance(t, str):
                return test(s, t)
            raise CelError(f"{name} needs strings")
        return f
    if name == "matches" and len(args) == 1:
        try:
            pattern_src = args[0]({})
        except Exception:  # noqa: BLE001 - not a literal
            raise Unsupported("matches() with a non-literal pattern") from None
        if not isinstance(pattern_src, str) or re.search(r"\\[pPQEzZ]|\(\?[<P=!#]|\{,", pattern_src):
            raise Unsupported("pattern syntax that RE2 and Python read differently")
        pattern = re.compile(pattern_src)

        def m(v: dict[str, Any]) -> bool:
            s = target(v)
            if isinstance(s, str):
                return pattern.search(s) is not None
            raise CelError("matches needs a string")
        return m
    raise Unsupported(f"method {name}")


def compile_fast(source: str) -> Fn:
    """``source`` as a closure over a variables dict, or ``Unsupported``."""
    fn = _Parser(source).parse()
    return fn
