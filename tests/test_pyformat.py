"""One statement for both paths: SQLAlchemy's ``:name`` parameters in psycopg's style."""

from __future__ import annotations

from gateway.db import pyformat


def test_named_parameters_become_pyformat_and_the_rest_is_kept() -> None:
    sql = "SELECT :a, x::text, '50%' FROM t WHERE y = :b_2 AND z = excluded.z"

    assert pyformat(sql) == (
        "SELECT %(a)s, x::text, '50%%' FROM t WHERE y = %(b_2)s AND z = excluded.z"
    )
