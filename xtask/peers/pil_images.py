"""Peer for `cargo xtask bench ingest`: decode + resize an image folder with Pillow.
Usage: pil_images.py FOLDER SIZE REPEATS -> one line per repeat: "seconds images"
"""
import os, sys, time
import numpy as np
from PIL import Image

folder, size, repeats = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
files = sorted(os.path.join(r, f) for r, _, fs in os.walk(folder) for f in fs)
for _ in range(repeats):
    t = time.perf_counter()
    arr = [np.asarray(Image.open(f).convert("RGB").resize((size, size), Image.BILINEAR)) for f in files]
    print(f"{time.perf_counter() - t:.6f} {len(arr)}", flush=True)
