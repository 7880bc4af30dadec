"""Bad input never loses data: each file of the corpus is dropped into a curated version of the
demo drive. The version's run (or its blocking check) fails with a message naming the file, the
line or row and the reason; the file is quarantined in `onedrive_ingest` with that reason; the
curated rows are exactly as before; the sensor keeps ticking; other versions go through; and
removing or correcting the file brings the version back to curated and clears the quarantine.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pytest
from click.testing import CliRunner

from dynamic_assets.cli import main
from dynamic_assets.db import Database
from dynamic_assets.declarations.model import DEMO_CONFIG, load_declarations
from dynamic_assets.definitions import build_defs
from dynamic_assets.demo.seed import seed_drive
from dynamic_assets.settings import Settings
from dynamic_assets_tests.support.drive_files import write_file
from dynamic_assets_tests.support.leaks import (
    dagster_haystacks,
    file_haystacks,
    find,
    table_haystacks,
)
from dynamic_assets_tests.support.postgres import create_database
from dynamic_assets_tests.support.runs import run_all, tick

CORPUS = Path(__file__).resolve().parents[2] / "corpus" / "bad"
TARGET = {"market": "2024-06-01", "corpus": "v1.0", "embeddings": "v2.3"}


@dataclass
class Env:
    db: Database
    root: Path
    defs: dg.Definitions
    instance: dg.DagsterInstance
    cursor: str | None = None

    def cycle(self) -> dict[tuple[str, str], dg.ExecuteInProcessResult]:
        """One sensor tick, then every run it requested (as the daemon would launch them)."""
        result = tick(self.defs, self.instance, self.cursor)
        self.cursor = result.cursor
        return run_all(self.defs, self.instance, result)

    def snapshot(self, dataset: str) -> tuple:
        """Row count and a digest of every curated row of the dataset (all versions)."""
        ds = load_declarations(DEMO_CONFIG).dataset(dataset)
        cols = ", ".join(f'"{c.name}"::text' for c in ds.columns)
        with self.db.connect() as conn:
            return conn.execute(
                f"SELECT count(*), md5(string_agg(r, '|' ORDER BY r)) FROM "
                f"(SELECT concat_ws(',', dataset_version, {cols}, _source_file_id, _source_row) AS r FROM ai_curated.{dataset}) t"
            ).fetchone()

    def ingest(self, path: str) -> tuple[str, str] | None:
        with self.db.connect() as conn:
            return conn.execute(
                "SELECT status, coalesce(error, '') FROM onedrive_ingest WHERE path = %s ORDER BY id DESC LIMIT 1",
                (path,),
            ).fetchone()


@pytest.fixture(scope="module")
def env(pg_server, tmp_path_factory):
    url = pg_server.get_uri(create_database(pg_server))
    root = tmp_path_factory.mktemp("bad") / "drive"
    seed_drive(root)
    with pytest.MonkeyPatch.context() as mp, dg.instance_for_test() as instance:
        mp.setenv("SUPABASE_DB_URL", url)
        settings = Settings(
            home=root.parent / "home", drive_root=root, config_path=DEMO_CONFIG, db_url_set=True
        )
        e = Env(Database(url), root, build_defs(settings, load_declarations(DEMO_CONFIG)), instance)
        first = e.cycle()
        assert len(first) == 6 and all(r.success for r in first.values())
        yield e


def failure_text(result: dg.ExecuteInProcessResult) -> str:
    """What a data engineer reads in the UI: step failure messages and failed check descriptions."""
    parts = []
    for event in result.all_events:
        if event.is_step_failure:
            data = event.step_failure_data
            parts.append(data.error.message if data.error else "")
            if data.user_failure_data and data.user_failure_data.description:
                parts.append(data.user_failure_data.description)
    for evaluation in result.get_asset_check_evaluations():
        if not evaluation.passed:
            parts.append(evaluation.description or "")
    return "\n".join(parts)


CASES = [
    # (corpus file, dataset, fragments the message and the quarantine reason must hold)
    ("too_many_fields.csv", "market", ["line 3", "expected 9 fields, found 10"]),
    ("too_few_fields.csv", "market", ["line 3", "expected 9 fields, found 8"]),
    ("unterminated_quote.csv", "market", ["line 3", "unterminated quote"]),
    ("latin1.csv", "market", ["line 3", "not valid UTF-8", "0xfc"]),
    ("empty.csv", "market", ["line 1", "the file is empty"]),
    ("header_only.csv", "market", ["line 2", "header but no data rows"]),
    ("header_added_column.csv", "market", ["line 1", "undeclared column(s) vwap"]),
    ("header_missing_column.csv", "market", ["line 1", "missing declared column(s) note"]),
    (
        "header_renamed_column.csv",
        "market",
        ["line 1", "missing declared column(s) close", "undeclared column(s) close_price"],
    ),
    ("header_reordered_columns.csv", "market", ["line 1", "not in the declared order"]),
    (
        "float_with_decimal_comma.csv",
        "market",
        ["column close", "not a valid float", "row 2", "'12,5'"],
    ),
    ("impossible_date.csv", "market", ["column date", "not a valid date", "row 2", "2024-13-45"]),
    ("nan_and_inf.csv", "market", ["NaN or infinite", "column close", "column high", "row 2"]),
    (
        "duplicate_primary_key.csv",
        "market",
        ["primary key (date, symbol)", "date=2030-01-02, symbol=ZZA", "row 1", "row 3"],
    ),
    ("single_object.json", "corpus", ["line 1", "not a JSON array of objects nor JSON Lines"]),
    ("scalar.json", "corpus", ["line 1", "not a JSON array of objects nor JSON Lines"]),
    ("broken_line.jsonl", "corpus", ["line 2", "not valid JSON"]),
    ("truncated.parquet", "embeddings", ["not a readable Parquet file"]),
    (
        "other_schema.parquet",
        "embeddings",
        [
            "does not match the declaration",
            "missing declared column(s) label",
            "undeclared column(s) title",
        ],
    ),
    ("gzip_bytes.csv", "market", ["line 1", "not valid UTF-8 at column 2", "byte 0x8b"]),
    ("header_only_no_newline.csv", "market", ["line 2", "the file has a header but no data rows"]),
    ("deeply_nested.jsonl", "corpus", ["line 2", "nested too deeply"]),
    ("deeply_nested.json", "corpus", ["row 2", "array item 2 is nested too deeply"]),
    ("lone_surrogate.jsonl", "corpus", ["line 3", "a lone UTF-16 surrogate", "not a character"]),
    (
        "trailing_garbage.json",
        "corpus",
        ["line 1: not valid JSON: more text after the object, at column 50"],
    ),
    (
        "vector_nan.parquet",
        "embeddings",
        ["column embedding", "1 value(s) are not a valid vector(16)", "row 2", "finite numbers"],
    ),
]
# What the run's message must also say: the one problem found, not three.
IN_RUN = {"trailing_garbage.json": ["corpus v1.0: 1 problem(s)\n"]}
# What the message must not say: a generic failure, or more than the one problem found.
ABSENT = {
    "header_only_no_newline.csv": ["Empty CSV file or block"],
    "trailing_garbage.json": ["spanning several lines", "nor JSON Lines", "Extra data"],
}


@pytest.mark.parametrize(("name", "dataset", "fragments"), CASES, ids=[c[0] for c in CASES])
def test_bad_file_is_refused_quarantined_and_recovered(env, name, dataset, fragments):
    version = TARGET[dataset]
    drive_path = f"datasets/{dataset}/{version}/{name}"
    before = env.snapshot(dataset)

    shutil.copy(CORPUS / name, env.root / drive_path)
    try:
        outcomes = env.cycle()
        assert list(outcomes) == [(dataset, version)]
        result = outcomes[(dataset, version)]
        assert not result.success
        text = failure_text(result)
        assert drive_path in text
        for fragment in fragments:
            assert fragment in text, (fragment, text)
        assert "Error occurred while executing op" not in text
        for fragment in IN_RUN.get(name, []):
            assert fragment in text, (fragment, text)

        status, reason = env.ingest(drive_path)
        assert status == "quarantined"
        for fragment in fragments:
            assert fragment in reason, (fragment, reason)
        for fragment in ABSENT.get(name, []):
            assert fragment not in text and fragment not in reason, (fragment, text)
        assert env.snapshot(dataset) == before  # same rows, same digest
        assert env.cycle() == {}  # the sensor keeps ticking and does not retry an unchanged file
    except BaseException:
        (env.root / drive_path).unlink()  # a failed case leaves no file behind for the next
        env.cycle()
        raise

    (env.root / drive_path).unlink()  # the collaborator takes the bad file out
    recovered = env.cycle()
    assert recovered[(dataset, version)].success
    # The quarantine is cleared: the file is recorded as deleted from the drive.
    assert env.ingest(drive_path) == ("deleted", "deleted from the drive")
    assert env.snapshot(dataset) == before


def test_unsafe_file_names_are_refused(env):
    version = TARGET["market"]
    before = env.snapshot("market")
    for bad_name, reason in [
        ("prices..csv", "contains '..'"),
        ("bell\x07.csv", "control character"),
    ]:
        path = env.root / "datasets" / "market" / version / bad_name
        shutil.copy(
            CORPUS / "too_few_fields.csv", path
        )  # content does not matter: the name is refused
        result = env.cycle()[("market", version)]
        assert not result.success
        text = failure_text(result)
        assert reason in text
        status, recorded = env.ingest(f"datasets/market/{version}/{bad_name}")
        assert (status, reason in recorded) == ("quarantined", True)
        assert env.snapshot("market") == before
        path.unlink()
        assert env.cycle()[("market", version)].success


def test_an_empty_version_folder_fails_then_a_file_brings_it_in(env):
    folder = env.root / "datasets" / "market" / "2024-09-02"
    folder.mkdir()
    result = env.cycle()[("market", "2024-09-02")]
    assert not result.success
    assert "datasets/market/2024-09-02: the version folder holds no data files" in failure_text(
        result
    )
    assert env.ingest("datasets/market/2024-09-02") == (
        "quarantined",
        "the version folder holds no data files",
    )

    shutil.copy(env.root / "datasets" / "market" / "2024-06-01" / "nyse.csv", folder / "nyse.csv")
    assert env.cycle()[("market", "2024-09-02")].success
    assert env.ingest("datasets/market/2024-09-02")[0] == "superseded"


def test_a_bad_version_does_not_hold_up_others(env):
    market_before = env.snapshot("market")
    shutil.copy(
        CORPUS / "latin1.csv", env.root / "datasets" / "market" / "2024-07-01" / "latin1.csv"
    )
    shutil.copytree(
        env.root / "datasets" / "corpus" / "v1.0", env.root / "datasets" / "corpus" / "v1.2"
    )
    outcomes = env.cycle()
    assert not outcomes[("market", "2024-07-01")].success
    assert outcomes[("corpus", "v1.2")].success
    assert env.snapshot("market") == market_before
    with env.db.connect() as conn:
        assert conn.execute(
            "SELECT count(*) FROM ai_curated.corpus WHERE dataset_version = 'v1.2'"
        ).fetchone() == (200,)
    (env.root / "datasets" / "market" / "2024-07-01" / "latin1.csv").unlink()
    assert env.cycle()[("market", "2024-07-01")].success


def test_a_bom_and_a_10_mb_field_are_taken(env):
    folder = env.root / "datasets" / "market" / "2024-10-01"
    folder.mkdir()
    shutil.copy(CORPUS / "utf8_bom.csv", folder / "excel.csv")
    big = "x" * (10 * 1024 * 1024)
    (folder / "big.csv").write_text(
        "date,symbol,exchange,open,high,low,close,volume,note\n"
        f'2030-01-03,ZZE,NYSE,1.0,2.0,0.5,1.5,10,"{big}"\n',
        encoding="utf-8",
    )
    assert env.cycle()[("market", "2024-10-01")].success
    with env.db.connect() as conn:
        rows = conn.execute(
            "SELECT symbol, length(note) FROM ai_curated.market WHERE dataset_version = '2024-10-01' ORDER BY symbol"
        ).fetchall()
    assert rows == [("ZZD", len("from Excel")), ("ZZE", len(big))]


# ------------------------------------------------------------------ sensitive datasets
# A bad file of a dataset declared sensitive is refused like any other (file, line or row,
# reason), but no value of its data reaches a message, a log, metadata or a store: not the
# run's output, not `onedrive_ingest` or `etl_runs`, not the Dagster event log or compute logs.

MARKER = "SSN-444-55-6666"  # a value of the sensitive data, in each bad file below
SENSITIVE_VERSION = "v1.0"
SENSITIVE_DECLARATIONS = """
datasets:
  - name: people_csv
    formats: [csv]
    columns: &people
      - {name: id, type: integer, nullable: false}
      - {name: ssn, type: string, nullable: false}
      - {name: amount, type: integer}
    primary_key: [ssn]
    expectations:
      - {type: expect_column_values_to_match_regex, column: ssn, regex: "^[0-9]{3}-[0-9]{2}-[0-9]{4}$"}
    sensitivity: sensitive
  - name: people_json
    formats: [json, jsonl]
    columns: *people
    sensitivity: sensitive
  - name: people_parquet
    formats: [parquet]
    columns: *people
    sensitivity: sensitive
"""
GOOD_SSN = "123-45-6789"

SENSITIVE_CASES = [
    # (file name, dataset, content, fragments the messages and the quarantine reason must hold)
    (
        "trailing_garbage.json",
        "people_json",
        f'[{{"id": 1, "ssn": "{GOOD_SSN}", "amount": 5}}]\n{MARKER}\n',
        ["row 2", "not valid JSON after array item 1"],
    ),
    (
        "amount_as_text.parquet",
        "people_parquet",
        pa.table({"id": [1, 2], "ssn": [GOOD_SSN, GOOD_SSN], "amount": ["7", MARKER]}),
        ["row 2", "column amount: cannot convert string to the declared type"],
    ),
    (
        "no_header.csv",
        "people_csv",
        f"1,{MARKER},5\n",
        ["line 1", "the header does not match the declaration", "missing declared column(s) id"],
    ),
    (
        "twice_named.csv",
        "people_csv",
        f"{MARKER},{MARKER},amount\n1,{GOOD_SSN},5\n",
        ["line 1", "the header names column(s) twice"],
    ),
    (
        "amount_not_integer.csv",
        "people_csv",
        f"id,ssn,amount\n1,{GOOD_SSN},{MARKER}\n",
        ["row 1", "column amount", "not a valid integer"],
    ),
    (
        "ssn_pattern.csv",
        "people_csv",
        f"id,ssn,amount\n1,{MARKER},5\n",
        ["row 1", "expect_column_values_to_match_regex on ssn failed"],
    ),
    (
        "duplicate_key.csv",
        "people_csv",
        f"id,ssn,amount\n1,{MARKER},5\n2,{MARKER},6\n",
        ["primary key (ssn)", "row 1", "row 2"],
    ),
    (
        "broken_line.jsonl",
        "people_json",
        f'{{"id": 1, "ssn": "{GOOD_SSN}", "amount": 5}}\n{{"id": 2, "ssn": "{MARKER}\\q"}}\n',
        ["line 2", "not valid JSON"],
    ),
    (
        "amount_not_integer.jsonl",
        "people_json",
        f'{{"id": 1, "ssn": "{GOOD_SSN}", "amount": "{MARKER}"}}\n',
        ["row 1", "column amount", "not a valid integer"],
    ),
]
SENSITIVE_IDS = [c[0] for c in SENSITIVE_CASES]


@dataclass
class SensitiveDrive:
    """A drive of sensitive datasets with one bad file dropped into a version folder."""

    root: Path
    config: Path
    drive_path: str


@pytest.fixture
def sensitive_drive(request, tmp_path) -> SensitiveDrive:
    name, dataset, content, _ = request.param
    config = tmp_path / "datasets.yaml"
    config.write_text(SENSITIVE_DECLARATIONS, encoding="utf-8")
    folder = tmp_path / "drive" / "datasets" / dataset / SENSITIVE_VERSION
    folder.mkdir(parents=True)
    write_file(folder, name, content)
    return SensitiveDrive(
        tmp_path / "drive", config, f"datasets/{dataset}/{SENSITIVE_VERSION}/{name}"
    )


def assert_withheld(haystacks: dict[str, bytes]) -> None:
    """The marker is in none of the haystacks, and the search finds it where it is."""
    assert find({"planted": f"x {MARKER} y".encode()}, {"value": [MARKER]}) == ["value in planted"]
    hits = find(haystacks, {"sensitive value": [MARKER]})
    assert hits == [], "\n".join(hits)


def ingest_reason(url: str, path: str) -> tuple[str, str]:
    with Database(url).connect() as conn:
        return conn.execute(
            "SELECT status, coalesce(error, '') FROM onedrive_ingest WHERE path = %s",
            (path,),
        ).fetchone()


@pytest.mark.parametrize(
    ("sensitive_drive", "fragments"),
    [(c, c[3]) for c in SENSITIVE_CASES],
    ids=SENSITIVE_IDS,
    indirect=["sensitive_drive"],
)
def test_a_bad_sensitive_file_run_by_the_sensor_names_no_value(
    sensitive_drive, fragments, db_url, tmp_path, monkeypatch, capfd
):
    monkeypatch.setenv("SUPABASE_DB_URL", db_url)
    settings = Settings(
        home=tmp_path / "home",
        drive_root=sensitive_drive.root,
        config_path=sensitive_drive.config,
        db_url_set=True,
    )
    (tmp_path / "dagster").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "dagster")) as instance:
        defs = build_defs(settings, load_declarations(sensitive_drive.config))
        outcomes = run_all(defs, instance, tick(defs, instance))
        assert len(outcomes) == 1
        (result,) = outcomes.values()
        assert not result.success
        text = failure_text(result)
        haystacks = dagster_haystacks(instance)
    assert sensitive_drive.drive_path in text
    for fragment in fragments:
        assert fragment in text, (fragment, text)
    status, reason = ingest_reason(db_url, sensitive_drive.drive_path)
    assert status == "quarantined"
    for fragment in fragments:
        assert fragment in reason, (fragment, reason)

    assert any(k.startswith("compute log") for k in haystacks)
    out, err = capfd.readouterr()
    haystacks |= {"stdout": out.encode(), "stderr": err.encode(), "failure text": text.encode()}
    haystacks |= table_haystacks(db_url)
    assert {"table public.onedrive_ingest", "table public.etl_runs"} <= set(haystacks)
    assert_withheld(haystacks)


@pytest.mark.parametrize(
    ("sensitive_drive", "fragments"),
    [(c, c[3]) for c in SENSITIVE_CASES],
    ids=SENSITIVE_IDS,
    indirect=["sensitive_drive"],
)
def test_a_bad_sensitive_file_run_by_the_command_line_names_no_value(
    sensitive_drive, fragments, db_url, tmp_path, capfd
):
    env = {
        "DYNAMIC_ASSETS_HOME": str(tmp_path / "home"),
        "DYNAMIC_ASSETS_DRIVE": str(sensitive_drive.root),
        "DYNAMIC_ASSETS_CONFIG": str(sensitive_drive.config),
        "SUPABASE_DB_URL": db_url,
        "DAGSTER_HOME": "",
    }
    result = CliRunner().invoke(main, ["run", "--no-train"], env=env)
    assert result.exit_code == 1, result.output
    dataset = sensitive_drive.drive_path.split("/")[1]
    # One line per failure: the file's refusal, or each blocking check that failed.
    assert re.search(
        rf"\d problem\(s\):\n  {dataset} {re.escape(SENSITIVE_VERSION)}  ", result.output
    )
    assert sensitive_drive.drive_path in result.output
    for fragment in fragments:
        assert fragment in result.output, (fragment, result.output)
    status, reason = ingest_reason(db_url, sensitive_drive.drive_path)
    assert status == "quarantined"
    for fragment in fragments:
        assert fragment in reason, (fragment, reason)

    haystacks = file_haystacks(tmp_path / "home", "home file")  # the instance: logs, runs
    assert any("compute_logs" in k for k in haystacks)
    out, err = capfd.readouterr()
    haystacks |= {
        "command output": result.output.encode(),
        "stdout": out.encode(),
        "stderr": err.encode(),
    }
    haystacks |= table_haystacks(db_url)
    assert_withheld(haystacks)
