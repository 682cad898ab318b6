"""Writes fsdd.csv: one line per recording (path, label, speaker, split), in file-name order.

The official split of the Free Spoken Digit Dataset: recordings with index 0-4 are the test part.
Run from this folder: python3 make_list.py
"""
import csv
import os

rows = []
for name in sorted(os.listdir("recordings")):
    if not name.endswith(".wav"):
        continue
    digit, speaker, index = name[:-4].split("_")
    rows.append((f"recordings/{name}", digit, speaker, "test" if int(index) < 5 else "train"))
with open("fsdd.csv.tmp", "w", newline="") as f:
    w = csv.writer(f, lineterminator="\n")
    w.writerow(["path", "label", "speaker", "split"])
    w.writerows(rows)
os.replace("fsdd.csv.tmp", "fsdd.csv")
