"""Graph drive figures against the local HTTPS Graph server of the tests (one machine, loopback).

    python benchmarks/graph_drive.py [--items 100000] [--mb 256]

Prints: a full delta listing of N items (pages of 1,000) and its rate; an incremental delta;
one download streamed with quickXorHash verification; one upload through an upload session.
The server is Python's http.server, so the figures bound the client from below: against Graph
the listing is dominated by Graph's page latency (the sensor's 40 s budget then resumes).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dynamic_assets.drive.graph import GraphDrive  # noqa: E402
from dynamic_assets.drive.graph.auth import ClientCredentials  # noqa: E402
from dynamic_assets_tests.support.graph_server import (  # noqa: E402
    CLIENT_ID,
    CLIENT_SECRET,
    DRIVE_ID,
    TENANT,
    GraphServer,
)

ROOT = "DynamicCapital/ai-training"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--mb", type=int, default=256)
    args = parser.parse_args()
    server = GraphServer(Path(tempfile.mkdtemp())).start()
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE"):
        os.environ[name] = str(server.ca_path)
    per_version = 99
    versions = max(1, args.items // (per_version + 1))
    for v in range(versions):
        for i in range(per_version):
            server.drive.put(f"{ROOT}/datasets/market/v1.{v}/part-{i:03d}.csv", b"a\n1\n")
    tokens = ClientCredentials(
        TENANT, CLIENT_ID, CLIENT_SECRET, authority_host=server.url, graph_url=server.graph_url
    )
    drive = GraphDrive(tokens, drive_id=DRIVE_ID, root=ROOT, graph_url=server.graph_url)

    started = time.perf_counter()
    full = drive.delta(None)
    seconds = time.perf_counter() - started
    n = len(full.items)
    print(
        f"full delta listing: {n:,} items, {full.pages} pages in {seconds:.1f} s ({n / seconds:,.0f} items/s)"
    )

    for i in range(50):
        server.drive.put(f"{ROOT}/datasets/market/v1.{i}/part-000.csv", b"a\n2\n")
    started = time.perf_counter()
    inc = drive.delta(full.link)
    print(f"incremental delta: {len(inc.items)} changed in {time.perf_counter() - started:.2f} s")

    blob = os.urandom(args.mb << 20)
    server.drive.put(f"{ROOT}/datasets/embeddings/v1.0/big.bin", blob)
    started = time.perf_counter()
    with drive.open("datasets/embeddings/v1.0/big.bin") as f:
        total = 0
        while chunk := f.read(1 << 20):
            total += len(chunk)
        assert f.raw.verified
    seconds = time.perf_counter() - started
    print(
        f"download + quickXorHash check: {total / 2**20:.0f} MiB in {seconds:.2f} s ({total / 2**20 / seconds:.0f} MiB/s)"
    )

    started = time.perf_counter()
    drive.write_bytes("model-checkpoints/bench/run-1/weights.bin", blob[: 64 << 20])
    seconds = time.perf_counter() - started
    print(
        f"upload session (10 MiB fragments): 64 MiB in {seconds:.2f} s ({64 / seconds:.0f} MiB/s)"
    )
    server.stop()


if __name__ == "__main__":
    main()
