"""Writes iris.sqlite, the iris table of iris.csv as a SQLite database (configs/iris-sqlite.yaml).

    python3 make_sqlite.py      # standard library only

Table `iris`: `id` (the row's position in iris.csv, 1-150), the four measurements (REAL) and
`species` (INTEGER: 0 setosa, 1 versicolor, 2 virginica), the same values as iris.csv.
"""

import csv
import os
import sqlite3

here = os.path.dirname(os.path.abspath(__file__))
path = os.path.join(here, "iris.sqlite")
if os.path.exists(path):
    os.remove(path)
db = sqlite3.connect(path)
db.execute(
    "CREATE TABLE iris (id INTEGER PRIMARY KEY, sepal_length REAL, sepal_width REAL, "
    "petal_length REAL, petal_width REAL, species INTEGER)"
)
with open(os.path.join(here, "iris.csv")) as f:
    rows = list(csv.reader(f))[1:]
db.executemany(
    "INSERT INTO iris VALUES (?, ?, ?, ?, ?, ?)",
    [(i + 1, float(a), float(b), float(c), float(d), int(y)) for i, (a, b, c, d, y) in enumerate(rows)],
)
db.commit()
db.execute("VACUUM")
db.close()
