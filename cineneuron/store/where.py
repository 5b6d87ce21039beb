"""User SQL filters on the memory pool (`cn query --where`, `decode.pool_filter`), parsed, not pasted.

A filter is parsed with sqlglot and must be ONE boolean condition over known `clips` columns,
built only from comparisons, IN / BETWEEN / LIKE / IS NULL, AND / OR / NOT, arithmetic and a few
functions Lance evaluates. The SQL that reaches Lance is written back here from the parsed tree,
every node parenthesised and every string re-quoted by `sql_str`, so nothing the user typed
(an unbalanced `)`, a `--` comment, a `;`, a stray quote) can change how the test-clip guard
combines with it: `(guard) AND (user)` always means both. The store also applies the guard as
its own row mask, so even a filter this module let through could only narrow the pool.
"""

from __future__ import annotations

import re

from cineneuron.errors import CNError
from cineneuron.store.lance_util import sql_str

# Scalar columns a filter may name; vectors, tensors and blobs cannot be compared in SQL.
FILTER_COLUMNS = ("clip_id", "source", "video", "video_uri", "start_s", "end_s", "split", "caption",
                  "labels", "factors", "cond_len", "ingested_at")

_NUMBER = re.compile(r"^(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
_IDENT = re.compile(r"^[a-z_][a-z0-9_]*$")


def _exp():
    from sqlglot import exp  # imported on use: the CLI's start-up stays light

    return exp


def _tables():
    exp = _exp()
    binary = {exp.EQ: "=", exp.NEQ: "<>", exp.GT: ">", exp.GTE: ">=", exp.LT: "<", exp.LTE: "<=",
              exp.And: "AND", exp.Or: "OR", exp.Like: "LIKE", exp.ILike: "ILIKE",
              exp.Add: "+", exp.Sub: "-", exp.Mul: "*", exp.Div: "/", exp.Mod: "%"}
    # sqlglot node -> the function Lance (DataFusion) knows; its arguments in order.
    funcs = {exp.ArrayContains: "array_has", exp.ArraySize: "array_length", exp.Lower: "lower",
             exp.Upper: "upper", exp.Length: "length", exp.StartsWith: "starts_with",
             exp.RegexpLike: "regexp_like", exp.Abs: "abs"}
    return binary, funcs


_ANONYMOUS = {"array_has", "array_has_any", "array_has_all", "array_length", "regexp_like", "regexp_match",
              "starts_with", "ends_with", "lower", "upper", "length", "abs"}
_BOOL_FUNCS = {"array_has", "array_has_any", "array_has_all", "regexp_like", "regexp_match", "starts_with",
               "ends_with"}


def parse_filter(expr: str, *, what: str = "--where", columns=FILTER_COLUMNS) -> str:
    """The filter rewritten from its parse tree, or CNError naming what is wrong (exit 2)."""
    import sqlglot
    from sqlglot.errors import SqlglotError

    if not isinstance(expr, str) or not expr.strip():
        raise CNError(f"{what} is empty; give a condition such as \"source = 'cc2017'\"")
    try:
        trees = [t for t in sqlglot.parse(expr) if t is not None]
    except SqlglotError as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise CNError(f"{what} {expr!r} is not a valid SQL condition ({first}); e.g. \"source = 'cc2017'\"") from None
    if len(trees) != 1:
        raise CNError(f"{what} {expr!r} must be one condition, not {len(trees)} statements")
    tree = trees[0]
    if not _is_condition(tree):
        raise CNError(f"{what} {expr!r} is not a condition; compare a column, e.g. \"split = 'train'\"")
    return _emit(tree, what, expr, set(columns))


def combine(guard: str | None, user: str | None, *, columns=FILTER_COLUMNS) -> str | None:
    """`(guard) AND (user)`, both parsed; None when neither is given."""
    parts = [parse_filter(guard, what="decode.pool_filter", columns=columns) if guard else None,
             parse_filter(user, columns=columns) if user is not None else None]
    parts = [p for p in parts if p]
    # Every compound node is emitted inside its own parentheses; only atoms (f(x), TRUE) need a pair.
    wrap = lambda p: p if p.startswith("(") else f"({p})"  # noqa: E731
    return " AND ".join(wrap(p) for p in parts) if len(parts) > 1 else (parts[0] if parts else None)


def _is_condition(node) -> bool:
    exp = _exp()
    while isinstance(node, exp.Paren):
        node = node.this
    if isinstance(node, (exp.And, exp.Or, exp.Not, exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE,
                         exp.In, exp.Between, exp.Is, exp.Like, exp.ILike, exp.Boolean,
                         exp.ArrayContains, exp.StartsWith, exp.RegexpLike)):
        return True
    return isinstance(node, exp.Anonymous) and str(node.this).lower() in _BOOL_FUNCS


def _emit(node, what: str, expr: str, columns: set[str]) -> str:  # noqa: C901 - one branch per node kind
    exp = _exp()
    binary, funcs = _tables()
    rec = lambda n: _emit(n, what, expr, columns)  # noqa: E731
    if isinstance(node, exp.Paren):
        return rec(node.this)
    if isinstance(node, exp.Column):
        name = node.name
        if node.table or not _IDENT.match(name or ""):
            raise CNError(f"{what}: write column names plainly (no table or quotes), got {node.sql()!r}")
        if name not in columns:
            hint = f" (for the text {name!r} use single quotes)" if node.this.args.get("quoted") else ""
            raise CNError(f"{what}: unknown column {name!r}{hint}; columns: {', '.join(sorted(columns))}")
        return name
    if isinstance(node, exp.Literal):
        if node.is_string:
            return sql_str(node.this)
        if not _NUMBER.match(str(node.this)):
            raise CNError(f"{what}: bad number {node.this!r} in {expr!r}")
        return str(node.this)
    if isinstance(node, exp.Boolean):
        return "TRUE" if node.this else "FALSE"
    if isinstance(node, exp.Null):
        return "NULL"
    if isinstance(node, exp.Neg):
        return f"(-{rec(node.this)})"
    if isinstance(node, (exp.Not, exp.And, exp.Or)):
        for part in (node.this, node.args.get("expression")):
            if part is not None and not _is_condition(part):
                raise CNError(f"{what}: {part.sql()!r} is not a condition (in {expr!r}); AND/OR/NOT join comparisons")
    if isinstance(node, exp.Not):
        return f"(NOT {rec(node.this)})"
    if type(node) in binary:
        return f"({rec(node.this)} {binary[type(node)]} {rec(node.expression)})"
    if isinstance(node, exp.Is):
        return f"({rec(node.this)} IS {rec(node.expression)})"
    if isinstance(node, exp.Between):
        return f"({rec(node.this)} BETWEEN {rec(node.args['low'])} AND {rec(node.args['high'])})"
    if isinstance(node, exp.In):
        if node.args.get("query") or node.args.get("unnest") or node.args.get("field") or not node.expressions:
            raise CNError(f"{what}: IN takes a list of values, e.g. source IN ('a', 'b'); got {expr!r}")
        return f"({rec(node.this)} IN ({', '.join(rec(e) for e in node.expressions)}))"
    if isinstance(node, exp.Array):
        return "[" + ", ".join(rec(e) for e in node.expressions) + "]"
    if type(node) in funcs:
        args = [a for a in (node.args.get("this"), node.args.get("expression")) if a is not None]
        return f"{funcs[type(node)]}({', '.join(rec(a) for a in args + list(node.expressions))})"
    if isinstance(node, exp.Anonymous) and str(node.this).lower() in _ANONYMOUS:
        return f"{str(node.this).lower()}({', '.join(rec(a) for a in node.expressions)})"
    kind = type(node).__name__
    raise CNError(f"{what}: {kind} ({node.sql()!r}) is not allowed in a pool filter; use comparisons, "
                  "IN, BETWEEN, LIKE, IS NULL, AND/OR/NOT and array_has(labels, '...')")
