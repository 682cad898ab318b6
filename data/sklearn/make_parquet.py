"""Writes iris.parquet, the iris table of iris.csv as Apache Parquet (configs/iris-parquet.yaml).

    pip install pyarrow && python3 make_parquet.py

Columns: the four measurements (double) and `species` (int64: 0 setosa, 1 versicolor,
2 virginica), the same values as iris.csv; Snappy-compressed, one row group.
"""

import csv
import os

import pyarrow as pa
import pyarrow.parquet as pq

here = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(here, "iris.csv")) as f:
    rows = list(csv.reader(f))[1:]
names = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
columns = {n: pa.array([float(r[i]) for r in rows], pa.float64()) for i, n in enumerate(names)}
columns["species"] = pa.array([int(r[4]) for r in rows], pa.int64())
pq.write_table(pa.table(columns), os.path.join(here, "iris.parquet"), compression="snappy")
