"""Generates the synthetic machine-room series of configs/sensor-forecast.yaml (docs/time-series.md).

    python3 make.py      # standard library only; writes machine_room.csv here

Hourly readings over 120 days (2,880 rows) from 2026-01-05 00:00:
- `load`: the planned machine load in percent: two shifts on weekdays (06:00-22:00, 70-95 %,
  drawn per shift), a skeleton crew at night and at weekends (10-20 %). It comes from the
  production plan, so it is known for the hours ahead: a known-future covariate.
- `outside`: the outdoor temperature (°C): a daily cycle around a slowly wandering mean
  (a random walk), plus noise. Only observed up to now: a past covariate.
- `temperature` (the target, °C): relaxes towards 18 + 0.09 · load + 0.25 · outside, with
  the machines' heat arriving over a few hours, plus sensor noise.
"""

import datetime
import math
import random

rng = random.Random(19)
start = datetime.datetime(2026, 1, 5)
hours = 120 * 24
mean_outside = 4.0
temperature = 22.0
lagged_load = 15.0
shift_level = {}
rows = []
for t in range(hours):
    now = start + datetime.timedelta(hours=t)
    weekday = now.weekday() < 5
    shift = (now.date(), now.hour >= 14) if 6 <= now.hour < 22 else None
    if weekday and shift is not None:
        if shift not in shift_level:
            shift_level[shift] = rng.uniform(70.0, 95.0)
        load = shift_level[shift] + rng.gauss(0.0, 2.0)
    else:
        load = rng.uniform(10.0, 20.0)
    mean_outside += rng.gauss(0.0, 0.25) - 0.01 * (mean_outside - 6.0)
    outside = mean_outside + 4.0 * math.sin(2 * math.pi * (now.hour - 9) / 24) + rng.gauss(0.0, 0.5)
    lagged_load += 0.35 * (load - lagged_load)
    equilibrium = 18.0 + 0.09 * lagged_load + 0.25 * outside
    temperature += 0.3 * (equilibrium - temperature) + rng.gauss(0.0, 0.15)
    reading = temperature + rng.gauss(0.0, 0.1)
    rows.append((now.strftime("%Y-%m-%dT%H:%M"), f"{load:.1f}", f"{outside:.2f}", f"{reading:.2f}"))

with open("machine_room.csv", "w") as f:
    f.write("time,load,outside,temperature\n")
    for r in rows:
        f.write(",".join(r) + "\n")
