"""Runs an ONNX model with ONNX Runtime, for crates/serve/tests/export.rs.

usage: onnx_run.py MODEL.onnx INPUTS.f32 DIM...

INPUTS.f32 holds little-endian float32 values of shape DIM... (fed to the model's only input).
Prints one JSON object: each output's name and its values, flattened.
"""

import json
import sys

import numpy as np
import onnxruntime as ort

path, inputs, dims = sys.argv[1], sys.argv[2], [int(d) for d in sys.argv[3:]]
x = np.fromfile(inputs, dtype="<f4").reshape(dims)
session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
names = [o.name for o in session.get_outputs()]
values = session.run(names, {session.get_inputs()[0].name: x})
print(json.dumps({n: v.ravel().astype(float).tolist() for n, v in zip(names, values)}))
