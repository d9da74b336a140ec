"""Renders SQL files written in Redshift's dialect (the marts', the data-quality checks') for the
engine in use: the one renderer of the core package, shared by every stage.

A file names its tables by placeholders such as `__raw__` or `__scan_events__`; the caller maps
each to one table or to several, which become a UNION ALL of them (a mart and its half-year
history tables). The mapping edits the parsed tree, never the text; `:name` stays a bound parameter.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path

import sqlglot
from sqlglot import exp

from ordertrack.identifiers import validate_identifier

SOURCE_DIALECT = "redshift"

TableName = tuple[str, str]
Relation = TableName | list[TableName] | exp.Query
"""(schema, table), a list of them read as one relation, or a query read as a subquery."""


def table(schema: str, name: str, alias: str | None = None) -> exp.Table:
    t = exp.table_(exp.to_identifier(validate_identifier(name), quoted=True),
                   db=exp.to_identifier(validate_identifier(schema), quoted=True))
    if alias:
        t.set("alias", exp.TableAlias(this=exp.to_identifier(alias)))
    return t


def union_all(tables: list[TableName]) -> exp.Query:
    """`SELECT * FROM t1 UNION ALL SELECT * FROM t2 ...`: a mart read together with its history."""
    union: exp.Query = exp.select("*").from_(table(*tables[0]))
    for t in tables[1:]:
        union = exp.union(union, exp.select("*").from_(table(*t)), distinct=False)
    return union


def parse(path: Path) -> exp.Expr:
    return sqlglot.parse_one(path.read_text(), read=SOURCE_DIALECT)


def substitute(tree: exp.Expr, relations: Mapping[str, Relation]) -> exp.Expr:
    """The tree with every placeholder table replaced by its relation."""

    def transform(node: exp.Expr) -> exp.Expr:
        if isinstance(node, exp.Column) and isinstance(target := relations.get(node.table), tuple):
            # a column qualified by a placeholder table (an UPDATE's target): the bare table name
            return exp.column(node.name, table=target[1], quoted=True)
        if not (isinstance(node, exp.Table) and node.name in relations):
            return node
        rel, alias = relations[node.name], node.alias or None
        if isinstance(rel, tuple):
            return table(*rel, alias=alias)
        if isinstance(rel, exp.Query):
            inner = substitute(rel, {k: v for k, v in relations.items() if v is not rel})
            return exp.Subquery(this=inner, alias=exp.TableAlias(this=exp.to_identifier(alias or node.name.strip("_"))))
        if not rel:
            raise ValueError(f"{node.name} maps to no table")
        return exp.Subquery(this=union_all(rel), alias=exp.TableAlias(this=exp.to_identifier(alias or node.name.strip("_"))))

    return tree.copy().transform(transform)


def first_per_key(tree: exp.Expr, dialect: str) -> exp.Expr:
    """PostgreSQL has no QUALIFY, and sqlglot's rewrite of it keeps the row number as an extra
    column (`SELECT *` over a subquery): `QUALIFY ROW_NUMBER() OVER (PARTITION BY k ORDER BY o) = 1`
    is `SELECT DISTINCT ON (k) ... ORDER BY k, o` there, with exactly the selected columns."""
    if dialect != "postgres":
        return tree

    def transform(node: exp.Expr) -> exp.Expr:
        qualify = node.args.get("qualify") if isinstance(node, exp.Select) else None
        if qualify is None:
            return node
        cond = qualify.this
        window = cond.this if isinstance(cond, exp.EQ) else None
        keys = [k.copy() for k in window.args.get("partition_by") or []] if isinstance(window, exp.Window) else []
        if not (isinstance(window, exp.Window) and isinstance(window.this, exp.RowNumber)
                and cond.expression.name == "1" and keys and not node.args.get("order") and not node.args.get("distinct")):
            # Anything else would silently keep the row number as a column: say so instead.
            raise ValueError(f"only QUALIFY ROW_NUMBER() OVER (PARTITION BY ... ORDER BY ...) = 1 renders for {dialect}: "
                             f"{qualify.sql()}")
        order = window.args.get("order")
        node.set("qualify", None)
        node.set("distinct", exp.Distinct(on=exp.Tuple(expressions=keys)))
        node.set("order", exp.Order(expressions=[*(exp.Ordered(this=k.copy()) for k in keys),
                                                 *([o.copy() for o in order.expressions] if order else [])]))
        return node

    return tree.transform(transform)


def render(source: Path | exp.Expr, dialect: str, relations: Mapping[str, Relation]) -> str:
    tree = parse(source) if isinstance(source, Path) else source
    return first_per_key(substitute(tree, relations), dialect).sql(dialect=dialect)


def count_of(statement: exp.Expr) -> exp.Expr:
    """`SELECT COUNT(*)` over the rows a `DELETE ... WHERE`, an `UPDATE ... WHERE` or an
    `INSERT ... SELECT` would touch, from the statement's own tree: the figure a job reports
    (engines disagree on how a statement reports its row count). Run it just before the statement."""
    count = exp.Count(this=exp.Star())
    if isinstance(statement, exp.Insert):
        rows = statement.expression.copy()
        if isinstance(rows, exp.Select):  # a derived table's columns need distinct names on Redshift
            rows.set("expressions", [exp.alias_(e.unalias(), f"c{i}") for i, e in enumerate(rows.expressions)])
        return exp.select(count).from_(exp.Subquery(this=rows, alias=exp.TableAlias(this=exp.to_identifier("n"))))
    if not isinstance(statement, (exp.Delete, exp.Update)):
        raise ValueError("not a DELETE, UPDATE or INSERT ... SELECT statement")
    q = exp.select(count).from_(statement.this.copy())
    where = statement.args.get("where")
    return q.where(where.this.copy()) if where is not None else q


@functools.lru_cache(maxsize=512)
def transpile(sql: str, dialect: str) -> str:
    """A statement written in the source dialect (no placeholder tables; `:name` parameters), in
    the engine's dialect with its parameter style. Cached: the landing renders the same few
    statements for every batch."""
    return sqlglot.transpile(sql, read=SOURCE_DIALECT, write=dialect)[0]


def render_text(sql: str, dialect: str, relations: Mapping[str, Relation]) -> str:
    """Inline SQL, written in the source dialect with placeholders like the files."""
    return render(sqlglot.parse_one(sql, read=SOURCE_DIALECT), dialect, relations)
