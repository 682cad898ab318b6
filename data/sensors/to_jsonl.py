"""Writes train.jsonl: train.csv as JSON Lines, one machine per line, its readings nested.

    python3 to_jsonl.py      # standard library only

{"id": 1, "readings": {"temperature": 21.73, "pressure": 98.33}, "site": "north", "status": "ok"}
"""

import csv
import json
import os

here = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(here, "train.csv")) as f:
    rows = list(csv.DictReader(f))
with open(os.path.join(here, "train.jsonl"), "w") as f:
    for i, r in enumerate(rows):
        readings = {"temperature": float(r["temperature"]), "pressure": float(r["pressure"])}
        f.write(json.dumps({"id": i + 1, "readings": readings, "site": r["site"], "status": r["status"]}) + "\n")
