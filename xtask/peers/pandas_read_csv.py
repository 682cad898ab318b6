"""Peer for `cargo xtask bench ingest`: pandas.read_csv on the same file, timed the same way.
Usage: pandas_read_csv.py FILE REPEATS   -> one line per repeat: "seconds rows"
"""
import sys, time
import pandas as pd

path, repeats = sys.argv[1], int(sys.argv[2])
for _ in range(repeats):
    t = time.perf_counter()
    df = pd.read_csv(path)
    print(f"{time.perf_counter() - t:.6f} {len(df)}", flush=True)
