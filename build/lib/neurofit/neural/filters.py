"""Row filters from config (``responses.query``, trial filters such as ``is_good == 1``) that can only
compare columns to literals: configs are shared between labs, so a filter must never run code
(pandas ``DataFrame.query`` evaluates ``@`` names and attribute access, and so reaches ``os.system``).

Grammar (whitespace free between tokens)::

    expression := or
    or         := and ("or" and)*
    and        := not ("and" not)*
    not        := "not" not | "(" expression ")" | comparison
    comparison := column OP literal | column ["not"] "in" "[" literal ("," literal)* [","] "]"
    OP         := "==" | "!=" | "<" | "<=" | ">" | ">="
    column     := a name (letters, digits, _) or any text in backticks, e.g. `frame name`
    literal    := 'text' | "text" | a number (12, -0.5, 1e-3) | true | false (also True, False)

Bytes columns (as h5py returns strings) are decoded to text before comparing. A number compared with
a text column, or text with a numeric column, is an error rather than an empty selection.

Use::

    row_filter = parse_row_filter("is_good == 1 and frameName in ['a.png', 'b.png']", key="responses.query")
    mask = row_filter.apply(table)          # numpy bool array, one per row
    table = table[mask]

Anything outside the grammar raises :class:`RowFilterError` naming the config key, the position and
what is allowed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

COMPARISONS = ("==", "!=", "<=", ">=", "<", ">")
KEYWORDS = {"and", "or", "not", "in", "true", "false", "True", "False"}
_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<number>[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?(?![A-Za-z_0-9]))
  | (?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
  | (?P<quoted>`[^`]+`)
  | (?P<name>[A-Za-z_][A-Za-z_0-9]*)
  | (?P<op>==|!=|<=|>=|<|>)
  | (?P<punct>[()\[\],])
""", re.VERBOSE)
GRAMMAR_HINT = ("a filter compares columns to literals: column == 1, column != 'x', column < 2.5, "
                "column in [1, 2], joined by and/or/not with parentheses")


class RowFilterError(ValueError):
    """A row filter is outside the grammar, or names a column the table lacks."""


@dataclass(frozen=True)
class _Token:
    kind: str
    text: str
    position: int


@dataclass(frozen=True)
class Comparison:
    column: str
    op: str  # one of COMPARISONS, "in" or "not in"
    value: Any  # a literal, or a tuple of literals for in / not in


@dataclass(frozen=True)
class Not:
    operand: Node


@dataclass(frozen=True)
class BoolOp:
    op: str  # "and" | "or"
    operands: tuple[Node, ...]


Node = Comparison | Not | BoolOp


def _tokens(expression: str, key: str) -> list[_Token]:
    tokens, position = [], 0
    while position < len(expression):
        match = _TOKEN.match(expression, position)
        if match is None:
            raise RowFilterError(f"{key}: {expression!r}: unexpected {expression[position:position + 12]!r} at "
                                 f"character {position}; {GRAMMAR_HINT}")
        if match.lastgroup != "space":
            tokens.append(_Token(match.lastgroup, match.group(), position))
        position = match.end()
    return tokens


class _Parser:
    def __init__(self, expression: str, key: str):
        self.expression, self.key = expression, key
        self.tokens = _tokens(expression, key)
        self.i = 0

    def error(self, what: str) -> RowFilterError:
        token = self.peek()
        where = f"at character {token.position} ({token.text!r})" if token else "at the end"
        return RowFilterError(f"{self.key}: {self.expression!r}: {what} {where}; {GRAMMAR_HINT}")

    def peek(self) -> _Token | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self, text: str | None = None, kind: str | None = None) -> _Token | None:
        token = self.peek()
        if token is None or (text is not None and token.text != text) or (kind is not None and token.kind != kind):
            return None
        self.i += 1
        return token

    def expect(self, text: str, what: str) -> None:
        if self.take(text) is None:
            raise self.error(f"expected {what}")

    def parse(self) -> Node:
        if not self.tokens:
            raise RowFilterError(f"{self.key}: the filter is empty; {GRAMMAR_HINT}")
        node = self.parse_or()
        if self.peek() is not None:
            raise self.error("unexpected text")
        return node

    def parse_or(self) -> Node:
        operands = [self.parse_and()]
        while self.take("or", "name"):
            operands.append(self.parse_and())
        return operands[0] if len(operands) == 1 else BoolOp("or", tuple(operands))

    def parse_and(self) -> Node:
        operands = [self.parse_not()]
        while self.take("and", "name"):
            operands.append(self.parse_not())
        return operands[0] if len(operands) == 1 else BoolOp("and", tuple(operands))

    def parse_not(self) -> Node:
        if self.take("not", "name"):
            return Not(self.parse_not())
        if self.take("("):
            node = self.parse_or()
            self.expect(")", "')'")
            return node
        return self.parse_comparison()

    def parse_comparison(self) -> Comparison:
        column = self.parse_column()
        if (token := self.take(kind="op")) is not None:
            return Comparison(column, token.text, self.parse_literal())
        negated = self.take("not", "name") is not None
        if self.take("in", "name") is None:
            raise self.error(f"expected a comparison ({', '.join(COMPARISONS)}, in, not in) after column {column!r}")
        self.expect("[", "'[' opening a list of literals")
        values = [self.parse_literal()]
        while self.take(","):
            if self.peek() is not None and self.peek().text == "]":
                break
            values.append(self.parse_literal())
        self.expect("]", "']' closing the list")
        return Comparison(column, "not in" if negated else "in", tuple(values))

    def parse_column(self) -> str:
        token = self.peek()
        if token is not None and token.kind == "quoted":
            self.i += 1
            return token.text[1:-1]
        if token is not None and token.kind == "name" and token.text not in KEYWORDS:
            self.i += 1
            return token.text
        raise self.error("expected a column name")

    def parse_literal(self) -> Any:
        token = self.peek()
        if token is None:
            raise self.error("expected a literal (a number, 'text', true or false)")
        if token.kind == "number":
            self.i += 1
            number = float(token.text)
            return int(token.text) if re.fullmatch(r"[-+]?\d+", token.text) else number
        if token.kind == "string":
            self.i += 1
            return _unescape(token.text[1:-1])
        if token.kind == "name" and token.text in ("true", "True", "false", "False"):
            self.i += 1
            return token.text.lower() == "true"
        raise self.error("expected a literal (a number, 'text', true or false)")


def _unescape(text: str) -> str:
    """Backslash escapes of the quote, the backslash, \\n and \\t; nothing else is interpreted."""
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t"}.get(m.group(1), m.group(1)), text)


def _is_text(value: Any) -> bool:
    return isinstance(value, str)


def _column_values(df: pd.DataFrame, column: str) -> np.ndarray:
    values = df[column].to_numpy()
    if values.dtype.kind in "OS":
        values = np.array([v.decode("utf-8", errors="replace") if isinstance(v, bytes | np.bytes_) else v
                           for v in values], dtype=object)
    return values


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value))


def _is_text_column(values: np.ndarray) -> bool:
    """Text, possibly with missing values (None, NaN), which no comparison keeps except !=."""
    if values.dtype.kind == "U":
        return True
    present = [v for v in values if not _is_missing(v)] if values.dtype.kind == "O" else []
    return bool(present) and all(isinstance(v, str) for v in present)


@dataclass(frozen=True)
class RowFilter:
    """A parsed filter: :meth:`apply` gives the boolean mask of the rows it keeps."""

    expression: str
    key: str
    tree: Node

    @property
    def columns(self) -> list[str]:
        """The columns the filter reads, in order of first use."""
        found: list[str] = []

        def walk(node: Node) -> None:
            if isinstance(node, Comparison):
                if node.column not in found:
                    found.append(node.column)
            elif isinstance(node, Not):
                walk(node.operand)
            else:
                for operand in node.operands:
                    walk(operand)

        walk(self.tree)
        return found

    def apply(self, df: pd.DataFrame, where: str = "") -> np.ndarray:
        """Boolean mask (one per row of ``df``). ``where`` (a file and table) prefixes errors."""
        prefix = f"{where}: " if where else ""
        missing = [c for c in self.columns if c not in df.columns]
        if missing:
            raise RowFilterError(f"{prefix}{self.key} {self.expression!r} names column(s) {missing} that the table "
                                 f"lacks; columns: {list(df.columns)}")
        return self._evaluate(self.tree, df, prefix)

    def _evaluate(self, node: Node, df: pd.DataFrame, prefix: str) -> np.ndarray:
        if isinstance(node, Not):
            return ~self._evaluate(node.operand, df, prefix)
        if isinstance(node, BoolOp):
            masks = [self._evaluate(operand, df, prefix) for operand in node.operands]
            return np.logical_and.reduce(masks) if node.op == "and" else np.logical_or.reduce(masks)
        values = _column_values(df, node.column)
        literals = node.value if node.op in ("in", "not in") else (node.value,)
        text_column = _is_text_column(values)
        for literal in literals:
            if _is_text(literal) != text_column and len(values):
                kind = "text" if text_column else f"numeric ({values.dtype})"
                raise RowFilterError(f"{prefix}{self.key} {self.expression!r}: column {node.column!r} is {kind} "
                                     f"but is compared with {literal!r}; quote text literals, leave numbers bare")
        if node.op in ("in", "not in"):
            mask = np.isin(values, np.asarray(literals, dtype=object if text_column else None))
            return ~mask if node.op == "not in" else mask
        literal = node.value
        compare = {"==": np.equal, "!=": np.not_equal, "<": np.less, "<=": np.less_equal, ">": np.greater,
                   ">=": np.greater_equal}[node.op]
        if text_column:
            return np.array([node.op == "!=" if _is_missing(v) else bool(compare(v, literal)) for v in values],
                            dtype=bool)
        return np.asarray(compare(values, literal), dtype=bool)


def parse_row_filter(expression: str, key: str = "responses.query") -> RowFilter:
    """Parse ``expression`` (see the module's grammar); ``key`` names the config key in errors."""
    if not isinstance(expression, str):
        raise RowFilterError(f"{key}: {expression!r} is not a text filter; {GRAMMAR_HINT}")
    return RowFilter(expression, key, _Parser(expression, key).parse())
