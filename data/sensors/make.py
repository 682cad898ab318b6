"""Generates the synthetic sensor data of the monitoring walk-through (docs/monitoring.md).

    python make.py      # numpy; writes train.csv, live.csv and drifted.csv here

Each record is a machine's temperature (°C), pressure (kPa) and site, labelled `fault` or `ok`:
a machine is at fault when its standardized temperature plus standardized pressure (plus 0.5 at
the `east` site) exceeds 0.8; 5 % of the labels are flipped (noise).

- train.csv (2,000 records) and live.csv (1,000): the same distribution, other seeds;
- drifted.csv (1,000): the temperature sensors were recalibrated and now read 5 °C (one standard
  deviation) higher, for the same physical state: the temperature distribution shifts, and the
  relation between the reading and a fault moves with it, so a model trained on train.csv
  flags too many faults.
"""

import numpy as np


def make(n, seed, offset):
    rng = np.random.default_rng(seed)
    temperature = rng.normal(20.0, 5.0, n)
    pressure = rng.normal(100.0, 10.0, n)
    site = rng.choice(["north", "south", "east"], size=n, p=[0.5, 0.3, 0.2])
    score = (temperature - 20.0) / 5.0 + (pressure - 100.0) / 10.0 + 0.5 * (site == "east")
    label = np.where(score > 0.8, "fault", "ok")
    flip = rng.random(n) < 0.05
    label = np.where(flip, np.where(label == "fault", "ok", "fault"), label)
    with open(f"{name(offset, seed)}", "w") as f:
        f.write("temperature,pressure,site,status\n")
        for t, p, s, y in zip(temperature + offset, pressure, site, label):
            f.write(f"{t:.2f},{p:.2f},{s},{y}\n")


def name(offset, seed):
    return "drifted.csv" if offset else ("train.csv" if seed == 1 else "live.csv")


make(2000, 1, 0.0)
make(1000, 2, 0.0)
make(1000, 3, 5.0)
