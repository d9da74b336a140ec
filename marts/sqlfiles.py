"""Renders the maintenance and data-quality SQL files (Redshift dialect) for the engine in use.

A file names its tables by placeholders such as `__raw__` or `__scan_events__`; the caller maps
each to one table or to several, which become a UNION ALL of them (a mart and its half-year
history tables). The mapping edits the parsed tree, never the text; `:name` stays a bound parameter.
"""

from __future__ import annotations

from pathlib import Path

import sqlglot
from sqlglot import exp

from ordertrack.identifiers import validate_identifier

SOURCE_DIALECT = "redshift"
SQL_DIR = Path(__file__).parent

TableName = tuple[str, str]
Relation = TableName | list[TableName] | exp.Query
"""(schema, table), a list of them read as one relation, or a query read as a subquery."""


def table(schema: str, name: str, alias: str | None = None) -> exp.Table:
    t = exp.table_(exp.to_identifier(validate_identifier(name), quoted=True),
                   db=exp.to_identifier(validate_identifier(schema), quoted=True))
    if alias:
        t.set("alias", exp.TableAlias(this=exp.to_identifier(alias)))
    return t


def parse(path: Path) -> exp.Expression:
    return sqlglot.parse_one(path.read_text(), read=SOURCE_DIALECT)


def substitute(tree: exp.Expression, relations: dict[str, Relation]) -> exp.Expression:
    """The tree with every placeholder table replaced by its relation."""

    def transform(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Column) and node.table in relations and isinstance(relations[node.table], tuple):
            # a column qualified by a placeholder table (an UPDATE's target): the bare table name
            return exp.column(node.name, table=relations[node.table][1], quoted=True)
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
        union: exp.Expression = exp.select("*").from_(table(*rel[0]))
        for t in rel[1:]:
            union = exp.union(union, exp.select("*").from_(table(*t)), distinct=False)
        return exp.Subquery(this=union, alias=exp.TableAlias(this=exp.to_identifier(alias or node.name.strip("_"))))

    return tree.copy().transform(transform)


def render(source: Path | exp.Expression, dialect: str, relations: dict[str, Relation]) -> str:
    tree = parse(source) if isinstance(source, Path) else source
    return substitute(tree, relations).sql(dialect=dialect)


def count_of(delete: exp.Expression) -> exp.Expression:
    """`SELECT COUNT(*)` over the rows a `DELETE ... WHERE` file would delete: the figure a job
    reports, from the same predicate (engines disagree on how a DELETE reports its row count)."""
    if not isinstance(delete, exp.Delete):
        raise ValueError("not a DELETE statement")
    q = exp.select(exp.Count(this=exp.Star())).from_(delete.this.copy())
    where = delete.args.get("where")
    return q.where(where.this.copy()) if where is not None else q


def render_text(sql: str, dialect: str, relations: dict[str, Relation]) -> str:
    """Inline SQL, written in the source dialect with placeholders like the files."""
    return render(sqlglot.parse_one(sql, read=SOURCE_DIALECT), dialect, relations)
