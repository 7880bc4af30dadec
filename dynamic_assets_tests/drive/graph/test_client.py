"""GraphDrive against a local HTTPS server that speaks Graph and the identity platform.

The real MSAL and requests code run; nothing reaches the internet. Waits are recorded by an
injected `sleep` instead of slept, so Retry-After and backoff are asserted, not waited for.
"""

from __future__ import annotations

import hashlib
import io
import logging
import random
import threading
import time

import pytest

from dynamic_assets.drive.graph import (
    UPLOAD_UNIT,
    ContentMismatch,
    GraphDrive,
    GraphError,
    redact,
)
from dynamic_assets.drive.graph.auth import AuthError, ClientCredentials
from dynamic_assets.formats.errors import LoadError
from dynamic_assets_tests.support.graph_server import (
    CLIENT_ID,
    CLIENT_SECRET,
    DRIVE_ID,
    TENANT,
    serve,
)

ROOT = "DynamicCapital/ai-training"


@pytest.fixture
def server(tmp_path, monkeypatch):
    with serve(tmp_path, monkeypatch) as srv:
        yield srv


class Sleeps(list):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def sleeps():
    return Sleeps()


def make_drive(server, sleeps, **kwargs) -> GraphDrive:
    tokens = ClientCredentials(
        TENANT, CLIENT_ID, CLIENT_SECRET, authority_host=server.url, graph_url=server.graph_url
    )
    return GraphDrive(
        tokens, drive_id=DRIVE_ID, root=ROOT, graph_url=server.graph_url, sleep=sleeps, **kwargs
    )


@pytest.fixture
def drive(server, sleeps):
    return make_drive(server, sleeps)


def put(server, rel: str, data: bytes):
    return server.drive.put(f"{ROOT}/{rel}", data)


def test_delta_reads_five_pages_of_1000_items_and_rebuilds_paths(server, drive):
    for v in range(5):
        for i in range(999):
            put(server, f"datasets/market/2024-06-0{v + 1}/part-{i:04d}.csv", b"a\n%d\n" % i)
    total = 1 + 5 + 5 * 999 - 1  # datasets, market, 5 version folders, files (= 5,000 items)
    assert total == 5000
    started = time.perf_counter()
    result = drive.delta(None)
    seconds = time.perf_counter() - started
    assert result.complete and result.full and not result.resync
    assert result.pages == 6  # 5 full pages and one with what is left
    assert len(server.requests("GET", "/delta")) == 6
    files = {i.path: i for i in result.items if not i.is_folder}
    assert len(files) == 4995
    item = files["datasets/market/2024-06-03/part-0042.csv"]
    node = server.drive.node_at(f"{ROOT}/datasets/market/2024-06-03/part-0042.csv")
    assert (item.item_id, item.etag, item.size) == (node.id, node.etag, len(b"a\n42\n"))
    assert item.hashes["quickXorHash"] == server.drive.hashes(node)["quickXorHash"]
    assert item.modified_by == "Ada Lovelace"
    # Delta items have no parentReference.path: every path came from folder ids in the feed.
    assert not server.requests("GET", "/items/")
    assert result.link.startswith(server.graph_url) and "token=" in result.link
    assert seconds < 15, f"5,000 items took {seconds:.1f} s"


def test_delta_resumes_from_the_page_it_reached(server, drive):
    for i in range(2500):
        put(server, f"datasets/corpus/v1.0/f{i:05d}.jsonl", b"{}\n")
    first = drive.delta(None, max_pages=2)
    assert not first.complete and first.pages == 2
    assert "token=" in first.link
    # A new process (new drive object, no folder map) continues from that page.
    rest = make_drive(server, Sleeps()).delta(first.link)
    assert rest.complete and rest.pages == 1
    seen = {i.path for i in first.items} | {i.path for i in rest.items}
    assert {f"datasets/corpus/v1.0/f{i:05d}.jsonl" for i in range(2500)} <= seen
    # The continuation had to look up the folder its files sit in, once.
    assert len(server.requests("GET", "/items/")) == 1


def test_delta_reports_changed_and_deleted_items(server, drive):
    put(server, "datasets/market/2024-06-01/a.csv", b"x\n1\n")
    put(server, "datasets/market/2024-06-01/b.csv", b"x\n2\n")
    put(server, "datasets/market/2024-07-01/c.csv", b"x\n3\n")
    link = drive.delta(None).link
    b_id = server.drive.node_at(f"{ROOT}/datasets/market/2024-06-01/b.csv").id
    july = server.drive.node_at(f"{ROOT}/datasets/market/2024-07-01")
    c_id = server.drive.node_at(f"{ROOT}/datasets/market/2024-07-01/c.csv").id
    server.drive.delete(f"{ROOT}/datasets/market/2024-06-01/b.csv")
    server.drive.delete(f"{ROOT}/datasets/market/2024-07-01")
    put(server, "datasets/market/2024-06-01/a.csv", b"x\n10\n")
    result = drive.delta(link)
    assert result.complete and not result.full
    assert [i.path for i in result.items] == ["datasets/market/2024-06-01/a.csv"]
    deleted = {d.item_id: d for d in result.deleted}
    assert set(deleted) == {b_id, july.id, c_id}
    assert deleted[july.id].is_folder and deleted[july.id].path == "datasets/market/2024-07-01"
    assert deleted[b_id].path is None  # OneDrive for Business leaves out the name: track by id


def test_expired_delta_link_resyncs_from_scratch(server, drive):
    put(server, "datasets/market/2024-06-01/a.csv", b"x\n1\n")
    link = drive.delta(None).link
    put(server, "datasets/market/2024-06-01/b.csv", b"x\n2\n")
    server.drive.expire_delta_tokens()
    result = drive.delta(link)
    assert result.resync and result.full and result.complete
    assert {i.path for i in result.items if not i.is_folder} == {
        "datasets/market/2024-06-01/a.csv",
        "datasets/market/2024-06-01/b.csv",
    }
    gone = [r for r in server.log if "/delta" in r["path"]]
    assert len(gone) == 3  # the first listing, the 410, the fresh enumeration from Location
    # The new link works.
    assert drive.delta(result.link).items == []


def test_folder_delta_refused_falls_back_to_the_drive_root(server, drive):
    server.folder_delta_supported = False
    put(server, "datasets/market/2024-06-01/a.csv", b"x\n1\n")
    server.drive.put("Other/elsewhere.csv", b"not ours\n")
    result = drive.delta(None)
    assert result.complete
    assert {i.path for i in result.items} == {
        "datasets",
        "datasets/market",
        "datasets/market/2024-06-01",
        "datasets/market/2024-06-01/a.csv",
    }


def test_429_honours_retry_after_and_503_backs_off(server, drive, sleeps):
    put(server, "datasets/market/2024-06-01/a.csv", b"x\n1\n")
    server.fault("GET", "/children", status=429, headers={"Retry-After": "1"})
    server.fault("GET", "/children", status=503)
    server.fault("GET", "/children", status=502)
    paths = [i.path for i in drive.list_tree("datasets/market")]
    assert paths == ["datasets/market/2024-06-01", "datasets/market/2024-06-01/a.csv"]
    assert sleeps[0] == 1.0  # exactly what Retry-After asked
    # 503 without Retry-After, then 502: exponential backoff (0.5 s doubling) plus 0-0.5 s jitter.
    assert 1.0 <= sleeps[1] <= 1.5 and 2.0 <= sleeps[2] <= 2.5
    assert drive.stats["retries"] == 3


def test_persistent_5xx_gives_up_after_a_bounded_number_of_attempts(server, sleeps):
    drive = make_drive(server, sleeps, max_attempts=4)
    server.fault("GET", "/root:/", status=500, times=10)
    with pytest.raises(GraphError) as err:
        drive.stat("datasets")
    assert "HTTP 500" in str(err.value) and "after 4 attempts" in str(err.value)
    assert len(sleeps) == 3
    assert len(server.requests("GET", "/root:/")) == 4


def test_a_huge_retry_after_fails_clearly_instead_of_sleeping(server, drive, sleeps):
    server.fault("GET", "/root:/", status=429, headers={"Retry-After": "3600"})
    with pytest.raises(GraphError, match="retry after 3600 s"):
        drive.stat("datasets")
    assert sleeps == []


def test_a_read_timeout_is_retried(server, sleeps):
    put(server, "datasets/market/2024-06-01/a.csv", b"x\n1\n")
    drive = make_drive(server, sleeps, timeout=(5.0, 0.3))
    server.fault("GET", "/root:/", status=200, stall=1.0)
    item = drive.stat("datasets/market/2024-06-01/a.csv")
    assert item.size == 4
    assert len(sleeps) == 1


def test_an_expired_token_is_refreshed_once(server, drive):
    put(server, "datasets/market/2024-06-01/a.csv", b"x\n1\n")
    drive.stat("datasets")
    drive.stat("datasets/market")
    assert server.token_grants == ["client_credentials"]  # one token for many calls (MSAL cache)
    server.expire_access_tokens()
    item = drive.stat("datasets/market/2024-06-01/a.csv")
    assert item.name == "a.csv"
    assert server.token_grants == ["client_credentials", "client_credentials"]
    assert drive.stats["token_refreshes"] == 1
    used = [r["auth"] for r in server.requests("GET", "a.csv")]
    assert len(used) == 2 and used[0] != used[1]


def test_a_token_graph_keeps_refusing_fails_after_one_refresh(server, drive):
    put(server, "datasets/market/2024-06-01/a.csv", b"x\n1\n")
    drive.stat("")
    server.token_lifetime = -10  # every new token is already expired for Graph
    server.expire_access_tokens()
    with pytest.raises(GraphError, match="HTTP 401 InvalidAuthenticationToken"):
        drive.stat("")
    assert drive.stats["token_refreshes"] == 1


def test_a_wrong_secret_is_named_without_showing_it(server):
    tokens = ClientCredentials(
        TENANT,
        CLIENT_ID,
        "wrong-" + CLIENT_SECRET,
        authority_host=server.url,
        graph_url=server.graph_url,
    )
    with pytest.raises(AuthError) as err:
        tokens.token()
    assert "invalid_client" in str(err.value)
    assert CLIENT_SECRET not in str(err.value) and CLIENT_SECRET not in repr(tokens)


def test_download_streams_and_verifies(server, drive):
    data = random.Random(3).randbytes(3_000_000)
    put(server, "datasets/embeddings/v2.3/items.bin", data)
    with drive.open("datasets/embeddings/v2.3/items.bin") as f:
        got = b"".join(iter(lambda: f.read(256 << 10), b""))
        assert f.raw.verified
    assert got == data


def test_a_connection_cut_mid_download_resumes_with_range(server, drive, sleeps):
    data = random.Random(4).randbytes(2_000_000)
    put(server, "datasets/market/2024-06-01/big.csv", data)
    server.fault("GET", "/download/", cut_after=700_000)
    with drive.open("datasets/market/2024-06-01/big.csv") as f:
        got = f.read()
        assert f.raw.resumes == 1 and f.raw.verified
    assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()
    ranges = [r["range"] for r in server.requests("GET", "/download/")]
    assert ranges[0] is None
    assert ranges[1].startswith("bytes=") and 0 < int(ranges[1][6:-1]) <= 700_000
    assert len(sleeps) == 1


def test_a_hash_mismatch_fails_the_file_clearly(server, drive, caplog):
    node = put(server, "datasets/market/2024-06-01/a.csv", b"date,close\n2024-06-01,1\n")
    node.reported = {"quickXorHash": "AAAAAAAAAAAAAAAAAAAAAAAAAAA="}
    caplog.set_level(logging.DEBUG)
    with pytest.raises(ContentMismatch) as err, drive.open("datasets/market/2024-06-01/a.csv") as f:
        while f.read(4):
            pass
    assert isinstance(err.value, LoadError)
    assert err.value.path == "datasets/market/2024-06-01/a.csv"
    assert (
        "quickXorHash" in err.value.message
        and "nothing from the file was kept" in err.value.message
    )
    assert server.tempauth not in err.value.message and server.tempauth not in caplog.text
    assert CLIENT_SECRET not in caplog.text
    assert not any(token in caplog.text for token in server.tokens)


def test_random_access_reads_ranges(server, drive):
    data = bytes(range(256)) * 4000
    put(server, "datasets/embeddings/v2.3/items.parquet", data)
    with drive.open("datasets/embeddings/v2.3/items.parquet") as f:
        f.seek(-8, io.SEEK_END)
        assert f.read(8) == data[-8:]
        f.seek(1000)
        assert f.read(10) == data[1000:1010]
    ranges = [r["range"] for r in server.requests("GET", "/download/")]
    assert ranges == [f"bytes={len(data) - 8}-", "bytes=1000-"]


def test_downloads_in_parallel_are_bounded(server, sleeps):
    drive = make_drive(server, sleeps, max_parallel_downloads=2)
    server.download_delay = 0.02
    for i in range(6):
        put(server, f"datasets/market/2024-06-01/f{i}.csv", bytes([i]) * 400_000)
    results: dict[int, bytes] = {}

    def fetch(i: int) -> None:
        with drive.open(f"datasets/market/2024-06-01/f{i}.csv") as f:
            results[i] = f.read()

    threads = [threading.Thread(target=fetch, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert {i: len(v) for i, v in results.items()} == {i: 400_000 for i in range(6)}
    assert server.max_active_downloads == 2


def test_small_files_are_put_without_overwriting(server, drive):
    item = drive.write_bytes("reports/daily.md", b"# report\n")
    assert item.path == "reports/daily.md" and item.size == 9
    with pytest.raises(FileExistsError, match="reports/daily.md already exists"):
        drive.write_bytes("reports/daily.md", b"# other\n")
    assert server.drive.node_at(f"{ROOT}/reports/daily.md").content == b"# report\n"
    drive.write_bytes("reports/daily.md", b"# other\n", overwrite=True)
    assert server.drive.node_at(f"{ROOT}/reports/daily.md").content == b"# other\n"
    puts = server.requests("PUT", "/content")
    assert [p["path"].rsplit("=", 1)[-1] for p in puts] == ["fail", "fail", "replace"]


def test_a_chunked_upload_resumes_after_a_failed_chunk(server, sleeps):
    drive = make_drive(server, sleeps, upload_chunk=4 * UPLOAD_UNIT)
    data = random.Random(5).randbytes((4 << 20) + 12_345)  # above the 4 MiB simple PUT: 4 fragments
    server.fault("PUT", "/upload/", status=500, skip=1)  # the second fragment fails
    item = drive.write_bytes("model-checkpoints/demo/run-1/weights.bin", data)
    assert item.size == len(data)
    assert server.drive.node_at(f"{ROOT}/model-checkpoints/demo/run-1/weights.bin").content == data
    session = next(iter(server.uploads.values()))
    chunk = 4 * UPLOAD_UNIT
    assert [start for start, _ in session["fragments"]] == [0, chunk, 2 * chunk, 3 * chunk]
    assert all(length % UPLOAD_UNIT == 0 for _, length in session["fragments"][:-1])
    assert len(server.requests("GET", "/upload/")) == 1  # asked the session what it still needs
    assert drive.stats["resumes"] == 1 and len(sleeps) == 1
    create = server.requests("POST", "createUploadSession")
    assert len(create) == 1
    # Nothing existing is overwritten by accident.
    with pytest.raises(FileExistsError):
        drive.write_bytes("model-checkpoints/demo/run-1/weights.bin", data[::-1])
    assert server.drive.node_at(f"{ROOT}/model-checkpoints/demo/run-1/weights.bin").content == data


def test_upload_fragments_must_be_multiples_of_320_kib(server, sleeps):
    with pytest.raises(ValueError, match="320 KiB"):
        make_drive(server, sleeps, upload_chunk=1_000_000)


def test_urls_are_shown_without_their_query():
    url = "https://contoso.sharepoint.com/_layouts/15/download.aspx?UniqueId=1&tempauth=eyJ0eXAi"
    assert "tempauth" not in redact(url) and redact(url).endswith("download.aspx?…")
