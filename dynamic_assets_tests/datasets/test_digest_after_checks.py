"""The content digest of a version's typed table is kept for its fingerprint only when the
blocking checks pass: a version they fail never has a digest written to `curated_builds` (a
trigger on the table, installed by the test, logs every digest written), while a version they
pass has its digest recorded, equal to the one computed from the table afterwards; a digest
cancelled mid-scan leaves no query running on the server."""

from __future__ import annotations

import psycopg
import pytest
from psycopg import sql

from dynamic_assets.datasets import pipeline
from dynamic_assets.db.tables import CURATED_SCHEMA, ident
from dynamic_assets.declarations.model import Expectation
from dynamic_assets.provenance.fingerprint import BuildDigest, content_digest, schema_record

VERSION = "2024-06-01"

LOGGED = """
CREATE TABLE public.digest_log (dataset text, version text, table_name text, digest text);
CREATE FUNCTION public.log_digest() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.content_digest IS NOT NULL THEN
    INSERT INTO public.digest_log
      VALUES (NEW.dataset, NEW.version, NEW.table_name, NEW.content_digest);
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER log_digest AFTER INSERT OR UPDATE ON public.curated_builds
  FOR EACH ROW EXECUTE FUNCTION public.log_digest();
"""


def digests_written(url: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT dataset, version, table_name, digest FROM digest_log"
        ).fetchall()


@pytest.fixture
def market(db, decls, drive):
    ds = decls.dataset("market")
    staged = pipeline.stage(db, drive, decls, ds, VERSION)
    with psycopg.connect(db.uri, autocommit=True) as conn:
        conn.execute(LOGGED)
    return ds, staged


def test_a_version_failing_its_blocking_checks_has_no_digest_written(db, market):
    ds, staged = market
    # Every close is below a billion: the blocking check fails on every row.
    ds.expectations.append(
        Expectation(
            type="expect_column_values_to_be_between",
            kwargs={"column": "close", "min_value": 1e9},
        )
    )
    checked = pipeline.validate(db, ds, VERSION, staged)
    assert checked.blocking_failures
    assert checked.build is None
    assert digests_written(db.uri) == []


def test_a_version_passing_its_blocking_checks_has_its_digest_recorded(db, market):
    ds, staged = market
    checked = pipeline.validate(db, ds, VERSION, staged)
    assert not checked.blocking_failures
    assert checked.build is not None
    with psycopg.connect(db.uri) as conn:
        expected = content_digest(
            conn, ds.name, VERSION, schema_record(ds)["columns"], table=checked.build.table
        )
        kept = conn.execute(
            "SELECT content_rows, content_digest FROM public.curated_builds "
            "WHERE dataset = %s AND version = %s AND table_name = %s",
            (ds.name, VERSION, checked.build.table),
        ).fetchone()
    assert kept == (expected.rows, expected.digest)
    assert digests_written(db.uri) == [(ds.name, VERSION, checked.build.table, expected.digest)]


def test_a_cancelled_digest_stops_its_scan_on_the_server(db, market):
    ds, staged = market
    checked = pipeline.validate(db, ds, VERSION, staged)
    table = checked.build.table
    with psycopg.connect(db.uri) as holder:
        # The scan waits on this lock: it is still running on the server when it is cancelled.
        holder.execute(
            sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(ident(CURATED_SCHEMA, table))
        )
        conn = psycopg.connect(db.uri, autocommit=True)
        pid = conn.info.backend_pid
        digest = BuildDigest(conn, ds, VERSION, table)
        with psycopg.connect(db.uri, autocommit=True) as watcher:
            for _ in range(600):
                if watcher.execute(
                    "SELECT 1 FROM pg_stat_activity, pg_sleep(0.05) "
                    "WHERE pid = %s AND wait_event_type = 'Lock'",
                    (pid,),
                ).fetchone():
                    break
            else:
                pytest.fail("the digest's scan never reached the table")
            digest.cancel()
            assert conn.closed
            left = watcher.execute(
                "SELECT state FROM pg_stat_activity WHERE pid = %s AND state = 'active'", (pid,)
            ).fetchall()
        holder.rollback()
    assert left == []
    assert len(digests_written(db.uri)) == 1  # validate's own, nothing from the cancelled one
