"""A throwaway PostgreSQL server for tests and benchmarks, started from the machine's binaries."""

from __future__ import annotations

import glob
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import psycopg

REQUIRE_ENV = "GATEWAY_TEST_REQUIRE_POSTGRES"


def find_bindir() -> Path | None:
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), reverse=True)
    return Path(candidates[0]).parent if candidates else None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_postgres(command: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *command]
    return command


@dataclass
class PostgresServer:
    bindir: Path
    datadir: Path
    port: int

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def stop(self) -> None:
        subprocess.run(
            _as_postgres(
                [str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-m", "immediate", "stop"]
            ),
            capture_output=True,
            check=False,
        )
        shutil.rmtree(self.datadir.parent, ignore_errors=True)


def start(*, durable: bool = False, extra: tuple[str, ...] = ()) -> PostgresServer:
    """initdb + pg_ctl start in a scratch folder on a free port (as the postgres user under root).

    ``durable=False`` turns fsync off: right for tests, wrong for benchmarks.
    """
    bindir = find_bindir()
    if bindir is None:
        raise RuntimeError("PostgreSQL server binaries (initdb, pg_ctl) not found")
    root = Path(tempfile.mkdtemp(prefix="gateway-pg-"))
    datadir = root / "data"
    os.chmod(root, 0o777)
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    subprocess.run(
        _as_postgres(
            [
                str(bindir / "initdb"),
                "-D",
                str(datadir),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-sync",
            ]
        ),
        capture_output=True,
        check=True,
    )
    port = free_port()
    options = [
        f"-p {port}",
        "-c listen_addresses=127.0.0.1",
        f"-c unix_socket_directories={root}",
        "-c max_connections=200",
        "-c shared_buffers=256MB",
    ]
    if not durable:
        options += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
    options += list(extra)
    subprocess.run(
        _as_postgres(
            [
                str(bindir / "pg_ctl"),
                "-D",
                str(datadir),
                "-l",
                str(root / "log"),
                "-w",
                "-o",
                " ".join(options),
                "start",
            ]
        ),
        capture_output=True,
        check=True,
    )
    server = PostgresServer(bindir, datadir, port)
    _wait_ready(server)
    return server


def _wait_ready(server: PostgresServer) -> None:
    import psycopg

    deadline = time.monotonic() + 30
    while True:
        try:
            with psycopg.connect(server.admin_url, connect_timeout=2):
                return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def create_database(server: PostgresServer, name: str, template: str | None = None) -> str:
    import psycopg

    with psycopg.connect(server.admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        suffix = f' TEMPLATE "{template}"' if template else ""
        conn.execute(f'CREATE DATABASE "{name}"{suffix}')
    return server.url(name)


# A fingerprint of everything a test could change about a database's schema. Databases cloned
# from one template share its object ids, so an object dropped and made again (a downgrade
# then an upgrade) shows as a new id even when it is defined the same way.
_FINGERPRINT = """
SELECT md5(string_agg(part, ',' ORDER BY part)) FROM (
    SELECT concat_ws(':', 'n', oid, nspname) FROM pg_namespace
    UNION ALL SELECT concat_ws(':', 'c', oid, relname, relkind, relnatts) FROM pg_class
        WHERE relnamespace = 'public'::regnamespace
    UNION ALL SELECT concat_ws(':', 'a', attrelid, attname, atttypid, attnotnull, attisdropped)
        FROM pg_attribute JOIN pg_class ON pg_class.oid = attrelid
        WHERE relnamespace = 'public'::regnamespace AND attnum > 0
    UNION ALL SELECT concat_ws(':', 'k', oid, conname) FROM pg_constraint
        WHERE connamespace = 'public'::regnamespace
    UNION ALL SELECT concat_ws(':', 't', oid, tgname, tgenabled) FROM pg_trigger
        WHERE NOT tgisinternal
    UNION ALL SELECT concat_ws(':', 'p', oid, proname) FROM pg_proc
        WHERE pronamespace = 'public'::regnamespace
    UNION ALL SELECT concat_ws(':', 'd', oid) FROM pg_attrdef
    UNION ALL SELECT concat_ws(':', 'e', oid, extname) FROM pg_extension
    UNION ALL SELECT concat_ws(':', 'v', version_num) FROM alembic_version
) AS parts(part)
"""


# The tables a test wrote to, even if it deleted the rows or rolled back: their files are not
# empty. Emptying only those costs ~5 ms a table, instead of ~100 ms for all of them.
_WRITTEN = """
SELECT relname FROM pg_class
WHERE relnamespace = 'public'::regnamespace AND relkind IN ('r', 'p')
    AND relname <> 'alembic_version' AND pg_relation_size(oid) > 0
ORDER BY relname
"""

# Every sequence a test drew from, back at its start (whatever table it serves, if any).
_RESTART_SEQUENCES = """
SELECT setval(format('%I.%I', schemaname, sequencename), start_value, false)
FROM pg_sequences WHERE last_value IS NOT NULL
"""


class DatabasePool:
    """Migrated databases lent to one test at a time, emptied and lent again.

    Creating a database per test from the template costs 130-300 ms, more as the cluster
    grows; emptying the few tables a test wrote to costs ~5 ms each. A database goes back to
    the pool only when it is safe: its schema is the template's to the object
    (``_FINGERPRINT``), every table it wrote to could be emptied within ``lock_timeout``, its
    sequences restart, and nothing is connected to it any more (connections a test left open
    are ended, and the database takes a new name, so a straggler can not reconnect to it and
    write into the next test's data). Otherwise it is left where it is, unused.
    """

    # A test's leftover lock makes its database unusable within 2 s, never the run hang.
    OPTIONS = "-c lock_timeout=2s -c statement_timeout=30s"

    def __init__(self, server: PostgresServer, template: str) -> None:
        import psycopg

        self.server = server
        self.template = template
        self.created = self.reused = self.discarded = 0
        self._free: list[str] = []
        self._names = itertools.count()
        self._admin: psycopg.Connection[Any] | None = None
        with psycopg.connect(server.url(template), autocommit=True) as conn:
            self._fingerprint = conn.execute(_FINGERPRINT).fetchone()
            # Rows the migrations insert would be lost by emptying the tables: if they wrote
            # any, every test gets a fresh clone of the template instead.
            self.reusable = conn.execute(_WRITTEN).fetchall() == []

    def _name(self) -> str:
        return f"gw_test_{os.getpid()}_{next(self._names)}"

    def _admin_connection(self) -> psycopg.Connection[Any]:
        import psycopg

        if self._admin is None or self._admin.closed or self._admin.broken:
            self._admin = psycopg.connect(
                self.server.admin_url, autocommit=True, options=self.OPTIONS
            )
        return self._admin

    def acquire(self) -> str:
        """The URL of an empty, migrated database no one else is using."""
        from psycopg import sql

        if self._free:
            self.reused += 1
            return self.server.url(self._free.pop())
        name = self._name()
        self._admin_connection().execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(self.template)
            )
        )
        self.created += 1
        return self.server.url(name)

    def release(self, url: str) -> None:
        """Give back the database of ``url`` (from ``acquire``); never raises."""
        import psycopg

        name = url.rsplit("/", 1)[1]
        try:
            fresh = self._rename(name) if self.reusable else None
            if fresh is not None and self._empty(fresh):
                self._free.append(fresh)
                return
        except psycopg.Error:
            pass
        self.discarded += 1

    def _rename(self, name: str) -> str | None:
        """End every connection to ``name`` and give it a new name (None: could not)."""
        import psycopg
        from psycopg import sql

        admin = self._admin_connection()
        fresh = self._name()
        for _ in range(3):
            admin.execute(
                "SELECT pg_terminate_backend(pid, 2000) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                (name,),
            )
            try:
                admin.execute(
                    sql.SQL("ALTER DATABASE {} RENAME TO {}").format(
                        sql.Identifier(name), sql.Identifier(fresh)
                    )
                )
            except psycopg.errors.ObjectInUse:
                continue
            return fresh
        return None

    def _empty(self, name: str) -> bool:
        """Empty every table and restart every sequence if the schema is the template's."""
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.server.url(name), autocommit=True, options=self.OPTIONS) as conn:
            if conn.execute(_FINGERPRINT).fetchone() != self._fingerprint:
                return False
            prepared = conn.execute(
                "SELECT EXISTS (SELECT FROM pg_prepared_xacts WHERE database = current_database())"
            ).fetchone()
            if prepared != (False,):
                return False
            written = [str(row[0]) for row in conn.execute(_WRITTEN)]
            if written:
                conn.execute(
                    sql.SQL("TRUNCATE {} CASCADE").format(
                        sql.SQL(", ").join(sql.Identifier(table) for table in written)
                    )
                )
            conn.execute(_RESTART_SEQUENCES)
        return True

    def close(self) -> None:
        if self._admin is not None:
            self._admin.close()
