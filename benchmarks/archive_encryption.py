"""Archive encryption benchmark: the AES-256-GCM envelope of `dynamic_assets.lifecycle.encryption`
on a file of random bytes (Parquet with zstd is about as incompressible).

    python benchmarks/archive_encryption.py            # 512 MiB
    python benchmarks/archive_encryption.py --mib 64   # quick run

Prints the encryption and decryption rates (file to file, page cache warm), the envelope's
overhead in bytes, and the process's peak RSS (interpreter and imports included).
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time

from dynamic_assets.lifecycle.encryption import ArchiveKeys, decrypt_stream, encrypt_stream


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mib", type=int, default=512)
    size = parser.parse_args().mib * 1024 * 1024
    key = os.urandom(32)
    with tempfile.TemporaryDirectory() as folder:
        plain, sealed, opened = (os.path.join(folder, n) for n in ("plain", "sealed", "opened"))
        with open(plain, "wb") as f:
            for _ in range(size // (1 << 20)):
                f.write(os.urandom(1 << 20))
        started = time.perf_counter()
        with open(plain, "rb") as src, open(sealed, "wb") as dst:
            encrypt_stream(src, dst, key)
        encrypting = time.perf_counter() - started
        started = time.perf_counter()
        with open(sealed, "rb") as src, open(opened, "wb") as dst:
            decrypt_stream(src, dst, ArchiveKeys(key))
        decrypting = time.perf_counter() - started
        overhead = os.path.getsize(sealed) - size
    mib = size / 2**20
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("| file | encrypt | decrypt | overhead | peak RSS |\n|---|---|---|---|---|")
    print(
        f"| {mib:.0f} MiB | {mib / encrypting:.0f} MiB/s | {mib / decrypting:.0f} MiB/s "
        f"| {overhead} bytes | {peak:.0f} MB |"
    )


if __name__ == "__main__":
    main()
