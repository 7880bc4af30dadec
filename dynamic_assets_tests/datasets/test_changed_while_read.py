"""A file that changes while a run reads it (a collaborator still writing it, a sync client still
appending) is not staged: the read is checked against the size and eTag listed for the file, the
staging step fails naming the file, and the next run, once the file is stable, takes it."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest
from psycopg import sql

from dynamic_assets.datasets import pipeline
from dynamic_assets.db.tables import RAW_SCHEMA, partition_exists, partition_name
from dynamic_assets.declarations.model import Declarations
from dynamic_assets.drive import LocalDrive
from dynamic_assets.drive.discovery import discover
from dynamic_assets_tests.support.graph_server import seed_from_folder, serve
from dynamic_assets_tests.support.onedrive import ROOT, graph_drive
from dynamic_assets_tests.support.staging import curate_version

DECLS = Declarations.model_validate(
    {
        "datasets": [
            {
                "name": "events",
                "columns": [
                    {"name": "id", "type": "integer", "nullable": False},
                    {"name": "label"},
                ],
            }
        ]
    }
)
HEADER = "id,label\n"
# More than one parse block (1 MiB), so the file grows after the first block has been read.
FIRST = 120_000
ADDED = 500


def rows(start: int, stop: int) -> str:
    return "".join(f"{i},label-{i}\n" for i in range(start, stop))


class GrowsAfterFirstBlock:
    """A drive file's stream that appends `extra` to the file once its first block is read."""

    def __init__(self, raw: io.BufferedReader, target: Path, extra: bytes):
        self._raw = raw
        self._target = target
        self._extra = extra

    def _grow(self, got: int) -> None:
        if got and self._extra:
            with self._target.open("ab") as out:
                out.write(self._extra)
            self._extra = b""

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        self._grow(len(data))
        return data

    def readinto(self, buffer) -> int | None:
        n = self._raw.readinto(buffer)
        self._grow(n or 0)
        return n

    def readline(self, size: int = -1) -> bytes:
        data = self._raw.readline(size)
        self._grow(len(data))
        return data

    def __getattr__(self, name):
        return getattr(self._raw, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._raw.close()


def curated_ids(db, version: str) -> list[int]:
    with db.connect() as conn:
        exists = conn.execute("SELECT to_regclass('ai_curated.events') IS NOT NULL").fetchone()[0]
        if not exists:
            return []
        return [
            r[0]
            for r in conn.execute(
                sql.SQL("SELECT id FROM {} WHERE dataset_version = %s ORDER BY id").format(
                    sql.Identifier("ai_curated", "events")
                ),
                (version,),
            )
        ]


def test_a_file_appended_to_while_it_is_read_fails_the_step_and_is_taken_once_stable(
    tmp_path, db, monkeypatch
):
    root = tmp_path / "drive"
    drive = LocalDrive(root)
    folder = root / "datasets" / "events"
    (folder / "v1.0").mkdir(parents=True)
    (folder / "v1.0" / "a.csv").write_text(HEADER + rows(1, 11), encoding="utf-8")
    curate_version(db, drive, DECLS, "events", "v1.0")
    assert curated_ids(db, "v1.0") == list(range(1, 11))

    (folder / "v2.0").mkdir()
    target = folder / "v2.0" / "a.csv"
    target.write_text(HEADER + rows(1, FIRST + 1), encoding="utf-8")
    listed_size = target.stat().st_size
    path = "datasets/events/v2.0/a.csv"
    opened = LocalDrive.open

    def growing_open(self, p: str):
        stream = opened(self, p)
        if p == path and target.stat().st_size == listed_size:
            return GrowsAfterFirstBlock(stream, target, rows(FIRST + 1, FIRST + ADDED + 1).encode())
        return stream

    monkeypatch.setattr(LocalDrive, "open", growing_open)
    with pytest.raises(pipeline.VersionFailed) as failed:
        curate_version(db, drive, DECLS, "events", "v2.0")
    message = str(failed.value)
    assert path in message
    assert "changed while it was read; it will be taken on the next run" in message
    assert target.stat().st_size > listed_size  # the file really grew during the read

    # Nothing of v2 is curated or staged; v1 is as it was.
    assert curated_ids(db, "v2.0") == []
    assert curated_ids(db, "v1.0") == list(range(1, 11))
    with db.connect() as conn:
        assert not partition_exists(conn, RAW_SCHEMA, partition_name("events", "v2.0"))
        statuses = conn.execute(
            "SELECT status, error FROM public.onedrive_ingest WHERE path = %s", (path,)
        ).fetchall()
        assert statuses and all(s != "quarantined" for s, _ in statuses)
        assert any(e and "changed while it was read" in e for _, e in statuses)
        step = conn.execute(
            "SELECT status, error FROM public.etl_runs WHERE dataset = 'events' "
            "AND version = 'v2.0' AND step = 'stage' ORDER BY id DESC LIMIT 1"
        ).fetchone()
        assert step[0] == "failed" and path in step[1]

    # The sensor sees the version as still to be taken, not as waiting on a quarantined file.
    pending, quarantined = pipeline.outstanding(db, discover(drive, DECLS))
    assert quarantined == []
    assert [(v.dataset, v.version) for v in pending] == [("events", "v2.0")]

    # Once the file is stable, the next run takes all of it.
    monkeypatch.setattr(LocalDrive, "open", opened)
    curate_version(db, drive, DECLS, "events", "v2.0")
    assert curated_ids(db, "v2.0") == list(range(1, FIRST + ADDED + 1))
    assert curated_ids(db, "v1.0") == list(range(1, 11))


def test_a_graph_file_replaced_between_listing_and_download_is_taken_on_the_next_run(
    tmp_path, monkeypatch, drive_root, db, decls
):
    """Graph checks a download against the item as it is when the download opens; a file
    replaced after the listing (same size, a new eTag) downloads consistently, so staging checks
    it against the listing: refused, not quarantined, and staged by the next run."""
    with serve(tmp_path, monkeypatch) as srv:
        seed_from_folder(srv, drive_root, ROOT)
        drive = graph_drive(srv)
        path = "datasets/market/2024-06-01/nyse.csv"
        full = f"{ROOT}/{path}"
        old = srv.drive.node_at(full).content
        new = old.replace(b"1", b"2")
        assert new != old and len(new) == len(old)
        opened = drive.open
        replaced = []

        def open_after_replace(p: str):
            if p == path and not replaced:
                srv.drive.put(full, new)
                replaced.append(p)
            return opened(p)

        monkeypatch.setattr(drive, "open", open_after_replace)
        ds = decls.dataset("market")
        with pytest.raises(pipeline.VersionFailed) as failed:
            pipeline.stage(db, drive, decls, ds, "2024-06-01")
        assert failed.value.failures[0][0] == path
        assert "changed while it was read; it will be taken on the next run" in str(failed.value)
        with db.connect() as conn:
            assert not partition_exists(conn, RAW_SCHEMA, partition_name("market", "2024-06-01"))
            statuses = conn.execute(
                "SELECT status FROM onedrive_ingest WHERE path = %s", (path,)
            ).fetchall()
        assert statuses == [("pending",)]

        staged = pipeline.stage(db, drive, decls, ds, "2024-06-01")
        (load,) = [f for f in staged.loads if f.path == path]
        assert load.sha256 == hashlib.sha256(new).hexdigest()
