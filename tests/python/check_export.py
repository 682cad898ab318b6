"""Checks dlp's exports with the reference Python libraries, for tests/tests/serve.rs.

usage: check_export.py MODEL.onnx WEIGHTS.safetensors IMAGES.idx.gz N

Runs the ONNX model with ONNX Runtime on the first N images (raw pixels, as the exported graph
takes them), reads the safetensors file with the `safetensors` package, and for an MLP also
computes the forward pass with NumPy from the documented tensor names (`layers.<i>.weight`
[out, in], `layers.<i>.bias`). Prints one JSON object.
"""

import gzip
import json
import struct
import sys

import numpy as np
import onnxruntime as ort
from safetensors import safe_open
from safetensors.numpy import load_file

onnx_path, st_path, images_path, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
with gzip.open(images_path) as f:
    data = f.read()
_, count, h, w = struct.unpack(">IIII", data[:16])
pixels = np.frombuffer(data, dtype=np.uint8, offset=16, count=n * h * w).reshape(n, 1, h, w).astype(np.float32)

session = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
logits, probs = session.run(["logits", "probabilities"], {"pixels": pixels})

tensors = load_file(st_path)
with safe_open(st_path, framework="numpy") as f:
    metadata = f.metadata()
out = {
    "onnxruntime": ort.__version__,
    "inputs": [[i.name, i.shape] for i in session.get_inputs()],
    "outputs": [o.name for o in session.get_outputs()],
    "logits": logits.ravel().tolist(),
    "probabilities": probs.ravel().tolist(),
    "tensors": {k: list(v.shape) for k, v in sorted(tensors.items())},
    "metadata": metadata,
}
arch = json.loads(metadata["dlp.architecture"])
if arch["arch"] == "mlp":
    x = pixels.reshape(n, -1) / 255.0
    layers = len(arch.get("hidden", [])) + 1
    for i in range(layers):
        x = x @ tensors[f"layers.{i}.weight"].T + tensors[f"layers.{i}.bias"]
        if i + 1 < layers:
            x = np.maximum(x, 0.0)
    e = np.exp(x - x.max(axis=1, keepdims=True))
    out["numpy_probabilities"] = (e / e.sum(axis=1, keepdims=True)).ravel().tolist()
print(json.dumps(out))
