"""An archive written in plaintext before its dataset was declared sensitive: the next lifecycle
pass encrypts it (the sealed copy verified before the plaintext file leaves the drive), a later
re-archive is encrypted too, and without a key the pass names the version as a problem (exit 1
from `dynamic-assets lifecycle`). A process killed at any step leaves the version readable."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from dynamic_assets.cli import main
from dynamic_assets.copies.load import check_copy
from dynamic_assets.lifecycle.archive import archive_version, registered, restore_version
from dynamic_assets.lifecycle.run import run_pass
from dynamic_assets.read.curated import read_curated
from dynamic_assets_tests.cli.test_tiers import _env, config  # noqa: F401
from dynamic_assets_tests.lifecycle.test_encryption import (
    KEY,
    KEY_B64,
    _independent_decrypt,
)

DATASET, VERSION = "embeddings", "v2.3"
KEY_ENV = "DYNAMIC_ASSETS_ARCHIVE_KEY"


def _version_files(drive_root: Path) -> list[Path]:
    return sorted(p for p in (drive_root / "archive" / DATASET / VERSION).iterdir())


def _readable_parquet(path: Path) -> bool:
    try:
        pq.read_table(io.BytesIO(path.read_bytes()))
    except pa.ArrowInvalid:
        return False
    return True


def _rows(db, drive) -> pa.Table:
    table = read_curated(DATASET, version=VERSION, as_arrow=True, database=db, drive=drive)
    return table.sort_by("item_id")


@pytest.fixture
def plaintext(curated, drive, drive_root, tier_decls, monkeypatch):
    """embeddings v2.3 archived while it was declared internal (plaintext), then declared
    sensitive."""
    monkeypatch.delenv(KEY_ENV, raising=False)
    before = _rows(curated, drive)
    done = archive_version(curated, drive, "archive", DATASET, VERSION)
    assert done is not None and not done.path.endswith(".enc")
    assert _readable_parquet(drive_root / done.path)
    tier_decls.dataset(DATASET).sensitivity = "sensitive"
    return before


def _assert_sealed(db, drive_root) -> None:
    with db.connect() as conn:
        reg = registered(conn, DATASET, VERSION)
    assert reg.tier == "archive"
    found = reg.archive
    files = _version_files(drive_root)
    assert [p.name for p in files] == [Path(found["path"]).name], files
    assert not _readable_parquet(files[0]), "a plaintext Parquet file is left in the drive"
    plain = _independent_decrypt(files[0].read_bytes(), KEY)
    check = check_copy(db, DATASET, VERSION, reg.columns, reg.record, io.BytesIO(plain))
    assert check.ok and check.digest == reg.record["rows"]["content_digest"]
    assert found["encryption"]["key_id"]
    assert "replaces" not in found


def test_pass_encrypts_an_archive_written_before_the_dataset_became_sensitive(
    plaintext,
    curated,
    drive,
    drive_root,
    tier_decls,
    monkeypatch,
):
    monkeypatch.setenv(KEY_ENV, KEY_B64)
    done = run_pass(curated, drive, tier_decls)
    assert done.failed == [] and done.problems == []
    assert [(r.dataset, r.version) for r in done.resealed] == [(DATASET, VERSION)]
    _assert_sealed(curated, drive_root)
    assert _rows(curated, drive).equals(plaintext)

    # Restored and archived again: encrypted, never plaintext again.
    restore_version(curated, drive, DATASET, VERSION)
    again = archive_version(curated, drive, "archive", DATASET, VERSION)
    assert again is not None and again.path.endswith(".enc")
    assert not _readable_parquet(drive_root / again.path)


def test_without_a_key_the_pass_names_the_plaintext_archive_and_exits_1(
    plaintext,
    curated,
    tmp_path,
    drive_root,
    db_url,
    config,  # noqa: F811
    monkeypatch,
):
    env = _env(tmp_path, drive_root, db_url, config())  # the demo's embeddings is sensitive
    result = CliRunner().invoke(main, ["lifecycle"], env=env)
    assert result.exit_code == 1, result.output
    line = next(
        (ln for ln in result.output.splitlines() if "embeddings v2.3" in ln and "plaintext" in ln),
        None,
    )
    assert line is not None, result.output
    assert KEY_ENV in line
    files = _version_files(drive_root)
    assert len(files) == 1 and _readable_parquet(files[0])  # nothing changed


CHILD = textwrap.dedent(
    """
    import os, signal, sys
    from dynamic_assets.db import Database
    from dynamic_assets.drive import LocalDrive
    from dynamic_assets.lifecycle.encryption import archive_keys
    from dynamic_assets.lifecycle.reseal import reseal_version

    url, root, at = sys.argv[1:]

    def step(name):
        if name == at:
            os.kill(os.getpid(), signal.SIGKILL)

    reseal_version(
        Database(url), LocalDrive(root), "embeddings", "v2.3", archive_keys().current, step=step
    )
    """
)


@pytest.mark.parametrize("at", ["uploaded", "verified", "recorded", "removed"])
def test_killed_reseal_leaves_the_version_readable_and_the_next_pass_finishes(
    plaintext,
    curated,
    db_url,
    drive,
    drive_root,
    tier_decls,
    monkeypatch,
    at,
):
    monkeypatch.setenv(KEY_ENV, KEY_B64)
    with curated.connect() as conn:  # as a pass does first: the registry follows the declaration
        conn.execute(
            "UPDATE public.datasets SET sensitivity = 'sensitive' WHERE name = %s", (DATASET,)
        )
    child = subprocess.run(
        [sys.executable, "-c", CHILD, db_url, str(drive_root), at],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr
    assert _rows(curated, drive).equals(plaintext)

    done = run_pass(curated, drive, tier_decls)
    assert done.failed == [] and done.problems == []
    _assert_sealed(curated, drive_root)
    assert _rows(curated, drive).equals(plaintext)
