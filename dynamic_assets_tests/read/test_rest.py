"""`read_curated(..., via="rest")`: the `supabase` client against a local server that speaks
PostgREST over the real curated tables, so what a key may read is decided by Postgres's row level
security and grants, exactly as on Supabase."""

from __future__ import annotations

import pandas as pd
import pytest
from postgrest.exceptions import APIError

from dynamic_assets.db import Database
from dynamic_assets.declarations.model import DEMO_CONFIG, load_declarations
from dynamic_assets.read.curated import DatasetNotFound, read_curated
from dynamic_assets.read.rest import RestConfigError, read_curated_rest, rest_client
from dynamic_assets_tests.support.demo_db import curated_demo_database
from dynamic_assets_tests.support.postgrest_server import make_key, serve


@pytest.fixture
def curated_url(pg_server, tmp_path_factory) -> str:
    root = tmp_path_factory.getbasetemp() / "rest-demo"
    root.mkdir(exist_ok=True)
    return curated_demo_database(pg_server, root, load_declarations(DEMO_CONFIG))


@pytest.fixture
def api(curated_url):
    with serve(curated_url, max_rows=1000) as server:
        yield server


def test_rest_reads_give_the_same_frames_and_arrow_tables_as_the_database(
    api, curated_url, monkeypatch
):
    monkeypatch.setenv("SUPABASE_URL", api.url)
    monkeypatch.setenv("SUPABASE_KEY", make_key("service_role"))
    db = Database(curated_url)
    for dataset, version in [("market", None), ("corpus", "v1.0"), ("embeddings", "v2.3.1")]:
        direct = read_curated(dataset, version, database=db)
        rest = read_curated(dataset, version, via="rest")
        # Row order: the REST pages come in (source file, row) order; compare as sets of rows.
        key = [c for c in direct.columns if c not in ("embedding", "meta")][:2]
        a = direct.sort_values(key, ignore_index=True)
        b = rest.sort_values(key, ignore_index=True)
        if dataset == "embeddings":
            assert all(
                (x == y).all() for x, y in zip(a.pop("embedding"), b.pop("embedding"), strict=True)
            )
        pd.testing.assert_frame_equal(a, b)
        assert dict(rest.dtypes) == dict(direct.dtypes)
        arrow_direct = read_curated(dataset, version, database=db, as_arrow=True)
        arrow_rest = read_curated(dataset, version, via="rest", as_arrow=True)
        assert arrow_rest.schema == arrow_direct.schema
        assert arrow_rest.num_rows == arrow_direct.num_rows
    types = dict(rest.dtypes)
    assert str(types["created_at"]) == "datetime64[us, UTC]" and str(types["item_id"]) == "Int64"


def test_pages_use_postgrest_request_shapes(api):
    client = rest_client(api.url, make_key("dai_trainer"))
    df = read_curated_rest(
        "market", "2024-06-01", ["date", "symbol", "close"], page_size=200, client=client
    )
    assert len(df) == 560 and list(df.columns) == ["date", "symbol", "close"]
    [catalog, catalog_again] = api.gets("curated_versions")
    assert dict(catalog.params) == {
        "select": "version,schema,row_count,fingerprint,curated_at,pointed",
        "name": "eq.market",
    }
    assert catalog.headers["accept-profile"] == "public"  # the view lives in `public`
    pages = api.gets("market")
    assert [dict(p.params) for p in pages] == [
        {
            "select": "date,symbol,close",
            "dataset_version": "eq.2024-06-01",
            "order": "_source_file_id.asc,_source_row.asc",
            "offset": str(offset),
            "limit": "200",
        }
        for offset in (0, 200, 400)
    ]
    assert [p.headers.get("prefer") for p in pages] == ["count=exact", None, None]
    for p in pages:
        assert p.headers["accept-profile"] == "ai_curated"
        assert p.headers["apikey"] and p.headers["authorization"].startswith("Bearer ")
    assert catalog_again.params == catalog.params  # the version is checked again after the pages


def test_a_server_row_cap_smaller_than_the_page_still_reads_everything(curated_url):
    with serve(curated_url, max_rows=150) as api:
        client = rest_client(api.url, make_key("service_role"))
        df = read_curated_rest("market", "2024-07-01", page_size=1000, client=client)
        offsets = [dict(p.params)["offset"] for p in api.gets("market")]
    assert len(df) == 691
    assert offsets == ["0", "150", "300", "450", "600"]


def test_postgrest_responses_carry_range_and_count(api):
    client = rest_client(api.url, make_key("anon"))
    table = client.schema("ai_curated").table("market")
    page = (
        table.select("symbol", count="exact")
        .eq("dataset_version", "2024-06-01")
        .range(10, 19)
        .execute()
    )
    assert len(page.data) == 10 and page.count == 560
    with pytest.raises(APIError) as info:
        table.select("symbol", count="exact").eq("dataset_version", "2024-06-01").range(
            600, 609
        ).execute()
    assert info.value.code == "PGRST103"  # 416: past the end
    with pytest.raises(APIError) as info:
        client.schema("ai_raw").table("market").select("*").execute()
    assert info.value.code == "PGRST106"  # staging is not an exposed schema


def test_each_key_reads_only_what_its_role_may(api):
    anon = rest_client(api.url, make_key("anon"))
    trainer = rest_client(api.url, make_key("dai_trainer"))
    service = rest_client(api.url, make_key("service_role"))

    assert len(read_curated_rest("market", client=anon)) == 691
    with pytest.raises(DatasetNotFound, match="no curated version this key may read"):
        read_curated_rest("corpus", client=anon)
    assert len(read_curated_rest("corpus", client=trainer)) > 0
    with pytest.raises(DatasetNotFound):
        read_curated_rest("embeddings", client=trainer)
    assert len(read_curated_rest("embeddings", client=service)) > 0

    # Going to the tables directly does not help: Postgres refuses.
    for client, dataset, status_code in [
        (anon, "corpus", "42501"),
        (trainer, "embeddings", "42501"),
    ]:
        with pytest.raises(APIError) as info:
            client.schema("ai_curated").table(dataset).select("*").limit(1).execute()
        assert (
            info.value.code == status_code
            and f"permission denied for table {dataset}" in info.value.message
        )
    # Nobody writes through the API, not even the service key.
    for client in (anon, trainer, service):
        with pytest.raises(APIError) as info:
            client.schema("ai_curated").table("market").update({"note": "x"}).eq(
                "symbol", "AAPL"
            ).execute()
        assert info.value.code == "42501"
        with pytest.raises(APIError) as info:
            client.table("datasets").delete().eq("name", "market").execute()
        assert info.value.code == "42501"
    # The registry is not on the API for trainers.
    with pytest.raises(APIError) as info:
        trainer.table("onedrive_ingest").select("*").execute()
    assert info.value.code == "42501"


def test_a_forged_key_and_missing_settings_are_refused_without_showing_the_key(api, monkeypatch):
    forged = make_key("service_role", secret="not-the-project-secret-0123456789abcdef")
    with pytest.raises(APIError) as info:
        read_curated_rest("market", client=rest_client(api.url, forged))
    assert info.value.code == "PGRST301"
    monkeypatch.delenv("SUPABASE_URL", raising=False)
    monkeypatch.setenv("SUPABASE_KEY", "sb-secret-key-value-123")
    with pytest.raises(RestConfigError) as err:
        read_curated("market", via="rest")
    assert "SUPABASE_URL" in str(err.value) and "sb-secret-key-value-123" not in str(err.value)
    with pytest.raises(ValueError, match="via='ftp'"):
        read_curated("market", via="ftp")


def test_unknown_versions_and_columns_name_what_exists(api):
    client = rest_client(api.url, make_key("anon"))
    with pytest.raises(DatasetNotFound, match="versions: 2024-06-01, 2024-07-01"):
        read_curated_rest("market", "2023-01-01", client=client)
    with pytest.raises(KeyError, match="no column"):
        read_curated_rest("market", columns=["close", "bogus"], client=client)


def test_rest_reads_follow_the_current_version_pointer_like_the_database(
    api, curated_url, monkeypatch
):
    from dynamic_assets.datasets.pointers import promote, rollback
    from dynamic_assets.demo.seed import SEED_VERSIONS
    from dynamic_assets.provenance.fingerprint import compute_fingerprint, store_fingerprint

    monkeypatch.setenv("SUPABASE_URL", api.url)
    monkeypatch.setenv("SUPABASE_KEY", make_key("dai_trainer"))
    db = Database(curated_url)
    older, newest = SEED_VERSIONS["market"][0], SEED_VERSIONS["market"][-1]
    assert older != newest
    market = load_declarations(DEMO_CONFIG).dataset("market")
    with db.connect() as conn:
        for version in (older, newest):
            store_fingerprint(conn, compute_fingerprint(conn, market, version))

    def dates(frame) -> set[str]:
        return {str(d)[:10] for d in frame["date"]}

    with db.connect() as conn, conn.transaction():
        promote(conn, "market", older, reason="a bad newest version")
    direct = read_curated("market", columns=["date"], database=db)
    rest = read_curated("market", columns=["date"], via="rest")
    assert dates(rest) == dates(direct) == dates(read_curated("market", older, database=db))
    assert dates(rest) != dates(read_curated("market", newest, database=db))

    with db.connect() as conn, conn.transaction():
        rollback(conn, "market")
    rest = read_curated("market", columns=["date"], via="rest")
    assert dates(rest) == dates(read_curated("market", newest, database=db))
