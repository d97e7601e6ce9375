"""Model instances from one raw row holding several tables' columns.

For hot reads whose statement is written once per process from the models' own fields (the ORM would build
the same statement on every call, ~1 ms of CPU, more than the query): the API token lookup, the RAG search's
collection lookup.
"""

from __future__ import annotations

from django.db import connection


def columns_plan(tables: list[tuple[type, str]]) -> tuple[str, list[tuple[type, list]]]:
    """`[(Model, alias), …]` -> the SELECT list of every concrete column, and the plan row_instances reads."""
    plan = [(model, list(model._meta.concrete_fields)) for model, _alias in tables]
    columns = ", ".join(f'{alias}."{field.column}"' for (_model, alias), (_m, fields) in zip(tables, plan, strict=True)
                        for field in fields)
    return columns, plan


def row_instances(plan: list[tuple[type, list]], row) -> list:
    """One instance per planned model from the row's leading columns (converted as the ORM converts them)."""
    instances, start = [], 0
    for model, fields in plan:
        values = [field.from_db_value(value, None, connection) if hasattr(field, "from_db_value") else value
                  for field, value in zip(fields, row[start:start + len(fields)], strict=True)]
        instances.append(model.from_db(connection.alias, [f.attname for f in fields], values))
        start += len(fields)
    return instances
