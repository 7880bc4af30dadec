"""Archives of sensitive datasets encrypted at rest (AES-256-GCM envelope): decrypted here by
an independent reading of the documented format; read, restored, refused without the right key
or when altered, and the key never written anywhere."""

from __future__ import annotations

import base64
import hashlib
import io
import logging
import os
import struct

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from psycopg import sql

from dynamic_assets.cli import main
from dynamic_assets.copies.load import check_copy
from dynamic_assets.db.tables import CURATED_SCHEMA, partition_exists, partition_name
from dynamic_assets.lifecycle.archive import (
    ArchiveError,
    archive_version,
    registered,
    restore_version,
)
from dynamic_assets.lifecycle.encryption import (
    ArchiveKeys,
    Corrupt,
    EncryptionError,
    KeyMissing,
    archive_keys,
    decrypt_stream,
    encrypt_stream,
    open_envelope,
)
from dynamic_assets.lifecycle.run import run_pass
from dynamic_assets.read.curated import read_curated
from dynamic_assets_tests.cli.test_tiers import _env, config  # noqa: F401
from dynamic_assets_tests.support.staging import curate_and_fingerprint
from dynamic_assets_tests.support.tiers import curated, tier_decls  # noqa: F401

# Recognisable keys: 32 bytes each, searched for (raw, base64, hex) in every output and table.
KEY = b"KEY-MUST-NEVER-LEAK-0123456789ab"
OTHER = b"another-key-not-the-archive-one!"
KEY_B64 = base64.b64encode(KEY).decode()
OTHER_B64 = base64.b64encode(OTHER).decode()
DATASET, VERSION = "embeddings", "v2.3"  # declared sensitive in the demo declarations


def _independent_decrypt(data: bytes, key: bytes) -> bytes:
    """The envelope as the module docstring and the README document it, read with AESGCM."""
    header = data[:27]
    tag, kid, chunk, prefix = struct.unpack(">8s8sI7s", header)
    assert tag == b"DAENC001"
    assert kid == hashlib.sha256(key).digest()[:8]
    body, out, i, size = data[27:], [], 0, chunk + 16
    while True:
        piece, body = body[:size], body[size:]
        final = not body
        nonce = prefix + i.to_bytes(4, "big") + (b"\x01" if final else b"\x00")
        out.append(AESGCM(key).decrypt(nonce, piece, header))
        if final:
            return b"".join(out)
        i += 1


def _in_core(db, dataset=DATASET, version=VERSION):
    with db.connect() as conn:
        return partition_exists(conn, CURATED_SCHEMA, partition_name(dataset, version))


def _tier(db, dataset=DATASET, version=VERSION):
    with db.connect() as conn:
        return registered(conn, dataset, version).tier


def _leaks(text: str) -> list[str]:
    forms = [KEY.decode(), KEY_B64, KEY.hex(), OTHER.decode(), OTHER_B64, OTHER.hex()]
    return [f for f in forms if f in text]


def _every_public_table(db) -> str:
    with db.connect() as conn:
        names = [
            r[0]
            for r in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1"
            )
        ]
        return "\n".join(
            str(row[0])
            for name in names
            for row in conn.execute(
                sql.SQL("SELECT t::text FROM {} t").format(sql.Identifier("public", name))
            )
        )


@pytest.fixture
def sensitive(db, drive, decls):
    curate_and_fingerprint(db, drive, decls, DATASET, VERSION)
    return db


def test_sensitive_archive_is_encrypted_and_decrypts_independently(
    sensitive, drive, drive_root, monkeypatch
):
    monkeypatch.setenv("DYNAMIC_ASSETS_ARCHIVE_KEY", KEY_B64)
    before = read_curated(DATASET, version=VERSION, as_arrow=True, database=sensitive)
    done = archive_version(sensitive, drive, "archive", DATASET, VERSION)
    assert done is not None and not _in_core(sensitive)
    assert _tier(sensitive) == "archive"
    data = (drive_root / done.path).read_bytes()
    with pytest.raises(pa.ArrowInvalid):
        pq.read_table(io.BytesIO(data))  # the file in the drive is not Parquet
    plain = _independent_decrypt(data, KEY)
    table = pq.read_table(io.BytesIO(plain))
    assert table.num_rows == before.num_rows
    with sensitive.connect() as conn:
        reg = registered(conn, DATASET, VERSION)
    assert reg.archive["encryption"]["key_id"] == hashlib.sha256(KEY).digest()[:8].hex()
    # The decrypted bytes are the version: row count and content digest of its fingerprint.
    check = check_copy(sensitive, DATASET, VERSION, reg.columns, reg.record, io.BytesIO(plain))
    assert check.ok and check.digest == reg.record["rows"]["content_digest"]

    after = read_curated(DATASET, version=VERSION, as_arrow=True, database=sensitive, drive=drive)
    assert after.sort_by("item_id").equals(before.sort_by("item_id"))
    assert restore_version(sensitive, drive, DATASET, VERSION) == before.num_rows
    assert _in_core(sensitive) and _tier(sensitive) == "core"


def test_sensitive_version_without_key_stays_in_core_and_the_pass_goes_on(
    sensitive, drive, decls, monkeypatch
):
    monkeypatch.delenv("DYNAMIC_ASSETS_ARCHIVE_KEY", raising=False)
    with pytest.raises(ArchiveError, match=r"embeddings v2.3 \(core tier\).*sensitive.*KEY"):
        archive_version(sensitive, drive, "archive", DATASET, VERSION)
    assert _in_core(sensitive) and _tier(sensitive) == "core"


def test_missing_wrong_and_previous_key(sensitive, drive, monkeypatch):
    monkeypatch.setenv("DYNAMIC_ASSETS_ARCHIVE_KEY", KEY_B64)
    archive_version(sensitive, drive, "archive", DATASET, VERSION)

    monkeypatch.delenv("DYNAMIC_ASSETS_ARCHIVE_KEY")
    where = r"embeddings v2.3 \(archive tier\)"
    with pytest.raises(ArchiveError, match=rf"{where}.*DYNAMIC_ASSETS_ARCHIVE_KEY is not set"):
        read_curated(DATASET, version=VERSION, database=sensitive, drive=drive)
    with pytest.raises(ArchiveError, match=rf"{where}.*not set"):
        restore_version(sensitive, drive, DATASET, VERSION)

    monkeypatch.setenv("DYNAMIC_ASSETS_ARCHIVE_KEY", OTHER_B64)
    with pytest.raises(ArchiveError, match=rf"{where}.*key is wrong or missing"):
        read_curated(DATASET, version=VERSION, database=sensitive, drive=drive)
    with pytest.raises(ArchiveError, match=rf"{where}.*key is wrong or missing"):
        restore_version(sensitive, drive, DATASET, VERSION)
    assert _tier(sensitive) == "archive" and not _in_core(sensitive)

    # Rotation: the old key as the previous one reads; restore + archive moves to the new key.
    monkeypatch.setenv("DYNAMIC_ASSETS_ARCHIVE_KEY_PREVIOUS", KEY_B64)
    table = read_curated(DATASET, version=VERSION, as_arrow=True, database=sensitive, drive=drive)
    assert table.num_rows > 0
    restore_version(sensitive, drive, DATASET, VERSION)
    again = archive_version(sensitive, drive, "archive", DATASET, VERSION)
    with sensitive.connect() as conn:
        reg = registered(conn, DATASET, VERSION)
    assert reg.archive["encryption"]["key_id"] == hashlib.sha256(OTHER).digest()[:8].hex()
    monkeypatch.delenv("DYNAMIC_ASSETS_ARCHIVE_KEY_PREVIOUS")
    assert read_curated(DATASET, version=VERSION, database=sensitive, drive=drive).shape[0] == (
        again.rows
    )


@pytest.mark.parametrize("damage", ["altered", "truncated", "truncated at a chunk"])
def test_altered_or_truncated_encrypted_archive(sensitive, drive, drive_root, monkeypatch, damage):
    monkeypatch.setenv("DYNAMIC_ASSETS_ARCHIVE_KEY", KEY_B64)
    monkeypatch.setattr("dynamic_assets.lifecycle.encryption.CHUNK_BYTES", 4096)
    done = archive_version(sensitive, drive, "archive", DATASET, VERSION)
    file = drive_root / done.path
    data = bytearray(file.read_bytes())
    if damage == "altered":
        data[len(data) // 2] ^= 0x01
    elif damage == "truncated":
        del data[len(data) - 100 :]
    else:
        del data[27 + 2 * (4096 + 16) :]  # header and first chunk only: a whole chunk dropped
        assert len(data) < file.stat().st_size
    file.write_bytes(bytes(data))
    where = r"embeddings v2.3 \(archive tier\)"
    with pytest.raises(ArchiveError, match=rf"{where}.*altered or truncated"):
        read_curated(DATASET, version=VERSION, database=sensitive, drive=drive)
    with pytest.raises(ArchiveError, match=rf"{where}.*altered or truncated"):
        restore_version(sensitive, drive, DATASET, VERSION)
    assert _tier(sensitive) == "archive" and not _in_core(sensitive)


def test_the_key_never_reaches_outputs_or_the_registry(
    curated,  # noqa: F811
    tmp_path,
    drive_root,
    db_url,
    config,  # noqa: F811
    caplog,
    drive,
):
    caplog.set_level(logging.DEBUG)
    with curated.connect() as conn:
        conn.execute("UPDATE public.datasets SET sensitivity = 'sensitive' WHERE name = 'market'")
    env = _env(tmp_path, drive_root, db_url, config())
    with curated.connect() as conn:
        conn.execute(
            "UPDATE public.datasets SET curated_at = now() - interval '40 days' "
            "WHERE name = 'market' AND version = '2024-06-01'"
        )
    runner = CliRunner()
    outputs = []
    refused = runner.invoke(main, ["lifecycle"], env=env)
    outputs.append(refused.output)
    assert _in_core(curated, "market", "2024-06-01")
    keyed = {**env, "DYNAMIC_ASSETS_ARCHIVE_KEY": KEY_B64}
    moved = runner.invoke(main, ["lifecycle"], env=keyed)
    outputs.append(moved.output)
    assert moved.exit_code == 0, moved.output
    assert "moved market 2024-06-01 core -> archive" in moved.output
    assert not _in_core(curated, "market", "2024-06-01")
    for attempt_env in (env, {**env, "DYNAMIC_ASSETS_ARCHIVE_KEY": OTHER_B64}):
        failed = runner.invoke(main, ["restore", "market", "2024-06-01"], env=attempt_env)
        assert failed.exit_code == 1
        assert "market 2024-06-01 (archive tier)" in failed.output
        outputs.append(failed.output)
    verified = runner.invoke(main, ["verify", "market", "2024-06-01"], env=keyed)
    outputs.append(verified.output)
    back = runner.invoke(main, ["restore", "market", "2024-06-01"], env=keyed)
    assert back.exit_code == 0, back.output
    outputs.append(back.output)
    passed = run_pass(curated, drive, _decls_of(config))
    outputs.extend(passed.failed)
    text = "\n".join([*outputs, caplog.text, _every_public_table(curated)])
    assert "market 2024-06-01" in text
    assert _leaks(text) == []
    for f in drive_root.rglob("*"):
        if f.is_file():
            data = f.read_bytes()
            assert KEY not in data and KEY_B64.encode() not in data


def _decls_of(config):  # noqa: F811 - the fixture's writer
    from dynamic_assets.declarations.model import load_declarations

    return load_declarations(config())


def test_sensitive_versions_are_planned_once_a_key_is_configured(curated, tier_decls):  # noqa: F811
    from datetime import UTC, datetime, timedelta

    from dynamic_assets.declarations.storage import CoreTier, Lifecycle
    from dynamic_assets.lifecycle.plan import plan_pass
    from dynamic_assets_tests.lifecycle.test_plan import _usage

    tier_decls.dataset("market").sensitivity = "sensitive"
    tier_decls.dataset("market").lifecycle = Lifecycle(hot_versions=1, archive_after_days=1)
    later = datetime.now(UTC) + timedelta(days=2)
    usage = _usage(curated, CoreTier())
    without = plan_pass(tier_decls, usage, now=later)
    assert [m.version for m in without.moves] == []
    assert any("DYNAMIC_ASSETS_ARCHIVE_KEY is not set" in k for k in without.kept)
    keyed = plan_pass(tier_decls, usage, now=later, encrypts=True)
    assert [(m.dataset, m.version) for m in keyed.moves] == [("market", "2024-06-01")]


def test_verify_decrypts_the_archive_with_the_key_and_fails_without(
    curated,  # noqa: F811
    tmp_path,
    drive_root,
    db_url,
    config,  # noqa: F811
):
    import yaml

    from dynamic_assets.provenance.attest import attest_pending
    from dynamic_assets.provenance.signing import load_signing_key

    env = _env(tmp_path, drive_root, db_url, config())
    keyed = {**env, "DYNAMIC_ASSETS_ARCHIVE_KEY": KEY_B64}
    with curated.connect() as conn:
        assert attest_pending(conn, load_signing_key(tmp_path / "home")) is not None
        conn.execute(
            "UPDATE public.datasets SET sensitivity = 'sensitive', "
            "curated_at = now() - interval '40 days' "
            "WHERE name = 'market' AND version = '2024-06-01'"
        )
    runner = CliRunner()
    moved = runner.invoke(main, ["lifecycle"], env=keyed)
    assert "moved market 2024-06-01 core -> archive: 560 rows" in moved.output
    assert "_archive.parquet.enc" in moved.output

    good = runner.invoke(main, ["verify", "market", "2024-06-01", "--json"], env=keyed)
    assert good.exit_code == 0, good.output
    steps = {s["name"]: s for s in yaml.safe_load(good.output)["steps"]}
    assert steps["content"]["status"] == "pass"

    bad = runner.invoke(main, ["verify", "market", "2024-06-01"], env=env)
    assert bad.exit_code == 1, bad.output
    assert "market 2024-06-01 (archive tier)" in bad.output
    assert "DYNAMIC_ASSETS_ARCHIVE_KEY is not set" in bad.output
    assert _leaks(good.output + bad.output + moved.output) == []


def _independent_encrypt(data: bytes, key: bytes, chunk: int) -> bytes:
    prefix = os.urandom(7)
    header = b"DAENC001" + hashlib.sha256(key).digest()[:8] + chunk.to_bytes(4, "big") + prefix
    pieces = [data[i : i + chunk] for i in range(0, len(data), chunk)] or [b""]
    out = [header]
    for i, piece in enumerate(pieces):
        final = b"\x01" if i == len(pieces) - 1 else b"\x00"
        out.append(AESGCM(key).encrypt(prefix + i.to_bytes(4, "big") + final, piece, header))
    return b"".join(out)


@pytest.mark.parametrize("size", [0, 1, 4096, 4097, 10_000])
def test_envelope_against_an_independent_implementation(size):
    data = os.urandom(size)
    sealed = io.BytesIO()
    encrypt_stream(io.BytesIO(data), sealed, KEY, chunk_bytes=4096)
    assert _independent_decrypt(sealed.getvalue(), KEY) == data
    opened = io.BytesIO()
    decrypt_stream(io.BytesIO(_independent_encrypt(data, KEY, 4096)), opened, ArchiveKeys(KEY))
    assert opened.getvalue() == data


@pytest.mark.parametrize("size", [0, 1, 4096, 4097, 10_000])
def test_opened_envelope_reads_the_plaintext_at_any_position(size):
    """The plaintext of an envelope written by an independent implementation, read through
    `open_envelope` from every position and in pieces across chunk boundaries."""
    data = os.urandom(size)
    plain = open_envelope(io.BytesIO(_independent_encrypt(data, KEY, 4096)), ArchiveKeys(KEY))
    assert plain.read() == data
    assert plain.seek(0, io.SEEK_END) == size
    for start in sorted({0, 1, 4095, 4096, 4097, size // 2, max(size - 1, 0)}):
        for length in (1, 100, 4096, 5000, size + 10):
            plain.seek(start)
            assert plain.read(length) == data[start : start + length]
    if size:
        assert (
            pq.read_table(
                open_envelope(
                    io.BytesIO(_independent_encrypt(_parquet_bytes(size), KEY, 512)),
                    ArchiveKeys(KEY),
                )
            ).num_rows
            == size
        )


def _parquet_bytes(rows: int) -> bytes:
    out = io.BytesIO()
    pq.write_table(pa.table({"n": list(range(rows))}), out)
    return out.getvalue()


def test_envelope_refuses_dropped_reordered_or_relabelled_chunks():
    data = os.urandom(5 * 1024)
    sealed = io.BytesIO()
    encrypt_stream(io.BytesIO(data), sealed, KEY, chunk_bytes=1024)
    whole = sealed.getvalue()
    head, size = whole[:27], 1024 + 16
    chunks = [whole[27 + i * size : 27 + (i + 1) * size] for i in range(5)]
    damaged = {
        "last chunk dropped": head + b"".join(chunks[:4]),
        "chunks swapped": head + chunks[1] + chunks[0] + b"".join(chunks[2:]),
        "header's chunk size changed": head[:16] + (2048).to_bytes(4, "big") + whole[20:],
        "only the header": head,
        "cut inside the header": head[:20],
    }
    for damage in damaged.values():
        with pytest.raises(Corrupt, match="truncated|altered|not an encrypted"):
            decrypt_stream(io.BytesIO(damage), io.BytesIO(), ArchiveKeys(KEY))
    with pytest.raises(KeyMissing, match="key is wrong or missing"):
        decrypt_stream(io.BytesIO(whole), io.BytesIO(), ArchiveKeys(OTHER))
    for damage in damaged.values():
        with pytest.raises(Corrupt, match="truncated|altered|not an encrypted"):
            open_envelope(io.BytesIO(damage), ArchiveKeys(KEY))
    with pytest.raises(KeyMissing, match="key is wrong or missing"):
        open_envelope(io.BytesIO(whole), ArchiveKeys(OTHER))
    with pytest.raises(EncryptionError, match="ARCHIVE_KEY encodes 16 bytes") as refused:
        archive_keys({"DYNAMIC_ASSETS_ARCHIVE_KEY": base64.b64encode(KEY[:16]).decode()})
    assert _leaks(str(refused.value) + repr(ArchiveKeys(KEY, OTHER))) == []


def test_no_plaintext_of_a_sensitive_version_reaches_local_disk(
    sensitive, drive, tmp_path, monkeypatch
):
    """Archiving, verifying, reading and restoring an encrypted version write no Parquet
    plaintext to local temporary files, even when every spooled file spills to disk: the
    temporary folder is a fresh one, spools spill at their first byte and the files they spill
    to are kept (named, not deleted) so that every byte written can be searched afterwards."""
    import tempfile

    from dynamic_assets.lifecycle.archive import archive_reader

    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    spooled = tempfile.SpooledTemporaryFile

    def spill_at_once(max_size=0, *args, **kwargs):
        return spooled(1, *args, **kwargs)

    def kept(*args, **kwargs):
        kwargs.pop("delete", None)
        return tempfile.NamedTemporaryFile(*args, delete=False, **kwargs)

    monkeypatch.setattr(tempfile, "SpooledTemporaryFile", spill_at_once)
    monkeypatch.setattr(tempfile, "TemporaryFile", kept)
    monkeypatch.setenv("DYNAMIC_ASSETS_ARCHIVE_KEY", KEY_B64)
    before = read_curated(DATASET, version=VERSION, as_arrow=True, database=sensitive)

    def plaintext_files() -> list[str]:
        files = [p for p in scratch.rglob("*") if p.is_file()]
        return [p.name for p in files if b"PAR1" in p.read_bytes()]

    done = archive_version(sensitive, drive, "archive", DATASET, VERSION)
    assert done is not None and _tier(sensitive) == "archive"
    assert any(scratch.iterdir()), "nothing spilled: the check would prove nothing"
    assert plaintext_files() == []
    after = read_curated(DATASET, version=VERSION, as_arrow=True, database=sensitive, drive=drive)
    assert after.sort_by("item_id").equals(before.sort_by("item_id"))
    assert plaintext_files() == []
    with sensitive.connect() as conn:
        reg = registered(conn, DATASET, VERSION)
    copy = archive_reader(sensitive, drive)(DATASET, VERSION, reg.record)
    assert copy.digest == reg.record["rows"]["content_digest"], copy.problem
    assert plaintext_files() == []
    assert restore_version(sensitive, drive, DATASET, VERSION) == before.num_rows
    assert plaintext_files() == []
