"""Time drive sensor ticks over a large drive: first tick (everything new) and a tick over
unchanged files, which must stay well inside Dagster's 60 s tick budget (target: under 2 s at
100,000 files). Baseline in the same run: a bare `os.walk` over the same tree. Each tick's CPU
time (this process) is printed beside its wall time: on a shared machine the wall time grows
with the load, the CPU time much less. The unchanged tick runs `--repeat` times; the least wall
and the least CPU time are shown, with the load average.

    python benchmarks/sensor_tick.py [--files 100000] [--versions 100] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import dagster as dg

from dynamic_assets.declarations.model import DEMO_CONFIG, load_declarations
from dynamic_assets.defs.datasets.sensors import build_drive_sensor
from dynamic_assets.defs.provenance.resources import AttestationResource
from dynamic_assets.defs.resources import DriveResource, PostgresResource


def make_drive(root: Path, files: int, versions: int) -> None:
    per = max(1, files // versions)
    for v in range(versions):
        folder = root / "datasets" / "market" / f"2020-{1 + v // 28 % 12:02d}-{1 + v % 28:02d}"
        if v >= 28 * 12:
            folder = root / "datasets" / "market" / f"v1.{v}"
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per):
            (folder / f"part-{i:05d}.csv").write_bytes(b"date,symbol\n")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--versions", type=int, default=100)
    parser.add_argument(
        "--repeat", type=int, default=3, help="unchanged ticks timed; the least wall and CPU shown"
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "drive"
        make_drive(root, args.files, args.versions)
        decls = load_declarations(DEMO_CONFIG)
        sensor = build_drive_sensor(decls, jobs=[])
        resources = {
            "drive": DriveResource(root=str(root)),
            "postgres": PostgresResource(pgdata=str(Path(tmp) / "pg")),
            "attestation": AttestationResource(key_home=str(Path(tmp) / "home")),
        }

        t = time.perf_counter()
        n = sum(len(f) for _, _, f in os.walk(root))
        walk = time.perf_counter() - t

        with dg.instance_for_test() as instance:
            for name in ("market",):
                instance.add_dynamic_partitions(f"{name}_versions", [])
            t = time.perf_counter()
            # Resources that are context managers (the embedded Postgres) live as long as the
            # sensor context they are opened in.
            with dg.build_sensor_context(instance=instance, resources=resources) as context:
                first = sensor(context)
            first_s = time.perf_counter() - t
            for req in first.dynamic_partitions_requests:
                instance.add_dynamic_partitions(req.partitions_def_name, list(req.partition_keys))
            walls, cpus = [], []
            for _ in range(args.repeat):
                t, c = time.perf_counter(), time.process_time()
                with dg.build_sensor_context(
                    instance=instance, resources=resources, cursor=first.cursor
                ) as context:
                    again = sensor(context)
                walls.append(time.perf_counter() - t)
                cpus.append(time.process_time() - c)
            again_s, again_cpu = min(walls), min(cpus)

        print(
            "| files | versions | os.walk s | first tick s (runs requested) | unchanged tick s "
            "(runs) | unchanged tick CPU s | cursor bytes | load average |"
        )
        print("|---|---|---|---|---|---|---|---|")
        print(
            f"| {n:,} | {args.versions} | {walk:.3f} | {first_s:.3f} ({len(first.run_requests)}) "
            f"| {again_s:.3f} ({len(again.run_requests)}) | {again_cpu:.3f} "
            f"| {len(again.cursor or ''):,} | {os.getloadavg()[0]:.1f} |"
        )
        print(
            f"unchanged ticks: wall {' '.join(f'{w:.2f}' for w in walls)} s, "
            f"CPU {' '.join(f'{c:.2f}' for c in cpus)} s"
        )


if __name__ == "__main__":
    main()
