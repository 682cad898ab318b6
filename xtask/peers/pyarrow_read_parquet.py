"""Peer for `cargo xtask bench ingest`: pyarrow.parquet.read_table(...).to_pandas() on the same
file, timed the same way.
Usage: pyarrow_read_parquet.py FILE REPEATS   -> one line per repeat: "seconds rows"
"""
import sys, time
import pyarrow.parquet as pq

path, repeats = sys.argv[1], int(sys.argv[2])
for _ in range(repeats):
    t = time.perf_counter()
    df = pq.read_table(path).to_pandas()
    print(f"{time.perf_counter() - t:.6f} {len(df)}", flush=True)
