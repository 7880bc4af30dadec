"""No secret leaks. The demo pipeline runs from the environment, as in production, with a
recognizable fake value for every secret setting: the drive is OneDrive through Graph with a
client secret (a local Graph server), attestations are signed with a given key and anchored on TON
with a wallet mnemonic and an API key (a local toncenter), alerts go to a webhook receiver with a
signing secret, and the database URL carries a password. A good version, then a bad file (a failed
run, a quarantined file, a failed blocking check), every sensor, every alert. Then everything the
platform wrote or showed is scanned: the Dagster event log (messages, asset and check metadata),
the instance's storage files, stdout and stderr, sensor cursors, resource reprs, the files in the
drive and under the home folder, every row of the database, and what the webhook receiver got.

The database password is then followed through every form a libpq connection string carries it
in (the user info, the query string, percent-encoded, key=value with quotes, PGPASSWORD): a
version is curated and a model trained, and the MLflow store, the event log, the output and the
messages are scanned the same way; a string libpq rejects is not repeated in its error."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from urllib.parse import quote, quote_plus

import dagster as dg
import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict
from pytoniq_core.crypto.keys import mnemonic_new

from dynamic_assets.db import Database
from dynamic_assets.declarations.model import DEMO_CONFIG, load_declarations
from dynamic_assets.definitions import build_defs
from dynamic_assets.defs.training.keys import train_job_name
from dynamic_assets.provenance import ton
from dynamic_assets.settings import Settings
from dynamic_assets_tests.support import graph_server, toncenter_server, webhook_receiver
from dynamic_assets_tests.support.onedrive import ROOT, onedrive_env, set_environment
from dynamic_assets_tests.support.runs import run_all, run_version, sensor_context
from dynamic_assets_tests.support.tracking import local_store

SIGNING_KEY = "5ec2e7" * 10 + "5ec2"  # a 32-byte Ed25519 seed, as hex
WEBHOOK_SECRET = "whsec-FAKE-5ec2e7-webhook-do-not-log"
DB_PASSWORD = "FAKE-db-pa55word-5ec2e7"
TON_API_KEY = "FAKE-toncenter-key-5ec2e7"
SUPABASE_KEY = "FAKE-supabase-service-key-5ec2e7"


def needles(mnemonic: str) -> dict[str, list[str]]:
    """Each secret and the forms it could leak in."""
    words = mnemonic.split()
    seed = bytes.fromhex(SIGNING_KEY)
    return {
        "ONEDRIVE_CLIENT_SECRET": [
            graph_server.CLIENT_SECRET,
            quote(graph_server.CLIENT_SECRET, safe=""),
        ],
        "TON_MNEMONIC": [mnemonic] + [" ".join(words[i : i + 3]) for i in range(len(words) - 2)],
        "DYNAMIC_ASSETS_WEBHOOK_SECRET": [WEBHOOK_SECRET],
        "database password": [DB_PASSWORD, quote(DB_PASSWORD, safe="")],
        "ATTESTATION_SIGNING_KEY": [
            SIGNING_KEY,
            SIGNING_KEY.upper(),
            base64.b64encode(seed).decode(),
            base64.urlsafe_b64encode(seed).decode().rstrip("="),
        ],
        "TON_API_KEY": [TON_API_KEY],
        "SUPABASE_KEY": [SUPABASE_KEY],
    }


def find(haystacks: dict[str, bytes], secrets: dict[str, list[str]]) -> list[str]:
    hits = []
    for where, data in haystacks.items():
        for name, forms in secrets.items():
            for form in forms:
                if form.encode() in data:
                    hits.append(f"{name} in {where}")
                    break
    return hits


def with_password(url: str) -> str:
    assert "postgres:@" in url
    return url.replace("postgres:@", f"postgres:{quote(DB_PASSWORD, safe='')}@", 1)


@pytest.fixture
def production(tmp_path, monkeypatch, drive_root, db_url):
    """Graph, toncenter and a webhook receiver on loopback; every secret setting set."""
    mnemonic = " ".join(mnemonic_new())
    for sub in ("g", "t"):
        (tmp_path / sub).mkdir()
    with (
        graph_server.serve(tmp_path / "g", monkeypatch) as graph,
        toncenter_server.serve(tmp_path / "t", monkeypatch) as chain,
        webhook_receiver.receiver(WEBHOOK_SECRET) as hooks,
    ):
        bundle = tmp_path / "test-cas.pem"
        bundle.write_bytes(graph.ca_path.read_bytes() + chain.ca_path.read_bytes())
        for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE"):
            monkeypatch.setenv(name, str(bundle))
        graph_server.seed_from_folder(graph, drive_root, ROOT)
        chain.fund(ton.wallet_from_mnemonic(mnemonic).address_str)
        env = {
            "DYNAMIC_ASSETS_HOME": str(tmp_path / "home"),
            "DYNAMIC_ASSETS_CONFIG": str(DEMO_CONFIG),
            "SUPABASE_DB_URL": with_password(db_url),
            **onedrive_env(graph),
            "ATTESTATION_SIGNING_KEY": SIGNING_KEY,
            "TON_MNEMONIC": mnemonic,
            "TON_API_URL": chain.api_url,
            "TON_API_KEY": TON_API_KEY,
            "DYNAMIC_ASSETS_WEBHOOK_URLS": hooks.url,
            "DYNAMIC_ASSETS_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "SUPABASE_URL": "http://127.0.0.1:9",
            "SUPABASE_KEY": SUPABASE_KEY,
        }
        set_environment(monkeypatch, env)
        yield graph, chain, hooks, mnemonic


def test_no_secret_appears_anywhere_the_pipeline_writes_or_shows(
    production, tmp_path, capfd, db_url
):
    graph, chain, hooks, mnemonic = production
    cursors: list[str] = []
    (tmp_path / "dagster").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "dagster")) as instance:
        defs = build_defs(Settings.from_env(), load_declarations(DEMO_CONFIG))
        resources = defs.resources
        drive_sensor = defs.get_sensor_def("drive_sensor")
        alerts = defs.get_sensor_def("alerts_sensor")
        on_failure = defs.get_sensor_def("alert_on_run_failure")

        def tick(sensor, cursor=None):
            with sensor_context(defs, instance, cursor) as ctx:
                out = sensor(ctx)
                cursors.append(str(getattr(out, "cursor", None) or ctx.cursor or ""))
            return out

        # Every demo version, from OneDrive to curated, fingerprinted, attested, anchored.
        first = tick(drive_sensor)
        good = run_all(defs, instance, first)
        assert good and all(r.success for r in good.values())
        tick(alerts)

        # A bad file: a failed blocking check, a quarantined file, a failed run, alerts.
        nyse = f"{ROOT}/datasets/market/2024-06-01/nyse.csv"
        text = graph.drive.node_at(nyse).content.decode()
        lines = text.splitlines()
        lines[1] = lines[1].replace(lines[1].split(",")[6], "-5", 1)  # a negative close
        graph.drive.put(nyse, ("\n".join(lines) + "\n").encode())
        second = tick(drive_sensor, first.cursor)
        bad = run_all(defs, instance, second)
        assert [r.success for r in bad.values()] == [False]
        for res in bad.values():
            with dg.build_run_status_sensor_context(
                sensor_name="alert_on_run_failure",
                dagster_event=res.get_run_failure_event(),
                dagster_instance=instance,
                dagster_run=res.dagster_run,
                resources=resources,
            ) as context:
                on_failure(context.for_run_failure())
        tick(alerts, cursors[-1])
        received = hooks.wait_for(9)
        types = sorted({r.event["type"] for r in received})
        assert types == ["attestation.confirmed", "check.failed", "file.quarantined", "run.failed"]
        assert all(r.verified for r in received)
        assert chain.calls("sendBoc") >= 1  # the mnemonic was used
        assert "client_credentials" in graph.token_grants  # the client secret was used

        # Everything there is to read.
        haystacks: dict[str, bytes] = {}
        for record in instance.get_run_records():
            run_id = record.dagster_run.run_id
            logs = instance.all_logs(run_id)
            haystacks[f"event log of run {run_id[:8]}"] = "\n".join(
                dg.serialize_value(e) for e in logs
            ).encode()
            haystacks[f"run {run_id[:8]} (config, tags)"] = dg.serialize_value(
                record.dagster_run
            ).encode()
        storage = Path(instance.root_directory)
        for path in storage.rglob("*"):
            if path.is_file():
                haystacks[f"instance file {path.relative_to(storage)}"] = path.read_bytes()
        haystacks["sensor cursors"] = "\n".join(cursors).encode()
        haystacks["resources"] = repr(resources).encode() + repr(defs.resources).encode()
    out, err = capfd.readouterr()
    haystacks["stdout"] = out.encode()
    haystacks["stderr"] = err.encode()
    for path in tmp_path.rglob("*"):
        if path.is_file() and "dagster" not in path.relative_to(tmp_path).parts[:1]:
            haystacks[f"file {path.relative_to(tmp_path)}"] = path.read_bytes()
    for node in list(graph.drive.nodes.values()):
        if not node.is_folder:
            haystacks[f"drive file {node.name}"] = node.content
    haystacks["webhook requests"] = b"\n".join(
        r.body + json.dumps(r.headers).encode() for r in hooks.received
    )
    import psycopg

    with psycopg.connect(db_url, autocommit=True) as conn:
        tables = conn.execute(
            "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p') "
            "AND n.nspname IN ('public', 'ai_raw', 'ai_curated') AND NOT c.relispartition"
        ).fetchall()
        for (table,) in tables:
            rows = conn.execute(f"SELECT to_jsonb(t)::text FROM {table} t").fetchall()
            haystacks[f"table {table}"] = "\n".join(r[0] for r in rows).encode()

    assert len(haystacks) > 30
    assert sum(len(v) for v in haystacks.values()) > 1_000_000
    secrets = needles(mnemonic)
    # The scan works: planted, each secret is found.
    planted = {"planted": " ".join(forms[0] for forms in secrets.values()).encode()}
    assert len(find(planted, secrets)) == len(secrets)
    assert find(haystacks, secrets) == []


# The database password in every form a libpq connection string can carry it. Each password is
# its own, with tokens long enough to be found if only a piece of it leaked.
KV_PASSWORD = "FAKE-kv-5ec2e7 with 'single' and \"double\" quotes-9d1f"


def kv_quote(value: str) -> str:
    """A value in libpq's key=value syntax: single-quoted, backslash before ' and \\."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def url_forms(db_url: str) -> dict[str, tuple[dict[str, str], str]]:
    """Form name -> (the environment that gives the database, the password in it)."""
    p = conninfo_to_dict(db_url)
    host, db, user = quote(p["host"], safe=""), p["dbname"], p["user"]
    userinfo = "FAKE-userinfo-5ec2e7"
    query = "FAKE-query-5ec2e7"
    encoded = "FAKE-pct/5ec2e7@:?#&=+%"
    env_password = "FAKE-pgpassword-5ec2e7"
    return {
        "password in the user info": (
            {"SUPABASE_DB_URL": f"postgresql://{user}:{userinfo}@/{db}?host={host}"},
            userinfo,
        ),
        "password in the query string": (
            {"SUPABASE_DB_URL": f"postgresql:///{db}?host={host}&user={user}&password={query}"},
            query,
        ),
        "password percent-encoded": (
            {"SUPABASE_DB_URL": f"postgresql://{user}:{quote(encoded, safe='')}@/{db}?host={host}"},
            encoded,
        ),
        "key=value, quoted with spaces and quotes": (
            {
                "SUPABASE_DB_URL": f"host={kv_quote(p['host'])} dbname={db} user={user} "
                f"password={kv_quote(KV_PASSWORD)}"
            },
            KV_PASSWORD,
        ),
        "PGPASSWORD": (
            {
                "SUPABASE_DB_URL": f"postgresql://{user}@/{db}?host={host}",
                "PGPASSWORD": env_password,
            },
            env_password,
        ),
    }


def password_needles(password: str) -> dict[str, list[str]]:
    """A password and the forms it could leak in: as is, URL-encoded, quoted for key=value, and
    each of its longer pieces."""
    forms = [password, quote(password, safe=""), quote_plus(password), kv_quote(password)]
    forms += [
        piece for piece in password.replace("'", " ").replace('"', " ").split() if len(piece) >= 10
    ]
    return {"database password": list(dict.fromkeys(forms))}


@pytest.mark.parametrize("form", list(url_forms("host=h dbname=d user=u")))
def test_no_database_password_reaches_mlflow_the_event_log_output_or_messages(
    form, tmp_path, monkeypatch, capfd, drive_root, db_url
):
    environment, password = url_forms(db_url)[form]
    home = tmp_path / "home"
    set_environment(
        monkeypatch,
        {
            "DYNAMIC_ASSETS_HOME": str(home),
            "DYNAMIC_ASSETS_CONFIG": str(DEMO_CONFIG),
            **environment,
        },
    )
    monkeypatch.setenv("DYNAMIC_ASSETS_DRIVE", str(drive_root))
    local_store(home / "mlflow")
    (tmp_path / "dagster").mkdir()
    haystacks: dict[str, bytes] = {}
    with dg.instance_for_test(temp_dir=str(tmp_path / "dagster")) as instance:
        defs = build_defs(Settings.from_env(), load_declarations(DEMO_CONFIG))
        ingest = run_version(defs, instance, "market", "2024-06-01")
        assert ingest.success
        trained = run_version(
            defs, instance, "market", "2024-06-01", job=train_job_name("market_next_return")
        )
        assert trained.success
        database = defs.resources["postgres"].database()
        haystacks["describe()"] = database.describe().encode()
        haystacks["repr"] = repr(database).encode() + repr(defs.resources).encode()
        for record in instance.get_run_records():
            run_id = record.dagster_run.run_id
            haystacks[f"event log of run {run_id[:8]}"] = "\n".join(
                dg.serialize_value(e) for e in instance.all_logs(run_id)
            ).encode()
            haystacks[f"run {run_id[:8]}"] = dg.serialize_value(record.dagster_run).encode()
    out, err = capfd.readouterr()
    haystacks["stdout"], haystacks["stderr"] = out.encode(), err.encode()
    for path in tmp_path.rglob("*"):
        if path.is_file():
            haystacks[f"file {path.relative_to(tmp_path)}"] = path.read_bytes()
    with psycopg.connect(db_url) as conn:  # the training run went into the registry
        assert conn.execute("SELECT count(*) FROM models").fetchone() == (1,)

    mlflow_db = haystacks["file home/mlflow/mlflow.db"]
    assert b"dynamic_assets_curated" in mlflow_db  # the dataset source was recorded
    secrets = password_needles(password)
    assert find({"planted": password.encode()}, secrets) == ["database password in planted"]
    assert find(haystacks, secrets) == []


@pytest.mark.parametrize(
    ("conninfo", "password"),
    [
        ("host=h dbname=d user=u password=FAKE-kv 5ec2e7-unquoted-9d1f", "5ec2e7-unquoted-9d1f"),
        ("host=h password='FAKE-kv-5ec2e7-unterminated-9d1f", "FAKE-kv-5ec2e7-unterminated-9d1f"),
        ("postgresql://u:FAKE-5ec2e7-uri-9d1f@h/d?bogus_option=1", "FAKE-5ec2e7-uri-9d1f"),
        ("postgresql://u@h/d?password=FAKE-5ec2e7-q-9d1f&bogus", "FAKE-5ec2e7-q-9d1f"),
    ],
)
def test_a_connection_string_libpq_rejects_is_not_repeated_in_the_error(conninfo, password):
    # Any error, as long as it does not repeat the string.
    with pytest.raises(Exception) as raised, Database(conninfo).connect():  # noqa: PT011
        pass
    message = "".join(
        str(e) for e in (raised.value, raised.value.__cause__, raised.value.__context__) if e
    )
    assert "connection string" in message or "connection info" in message
    assert find({"error": message.encode()}, password_needles(password)) == []
