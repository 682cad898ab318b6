"""Peer for `cargo xtask bench serve`: the same MNIST MLP (weights read from the dlp bundle's
model.safetensors) as a PyTorch model behind FastAPI + uvicorn, answering the same Open
Inference Protocol request as `dlp serve` (POST /v2/models/{name}/infer, tensor `pixels`).

Usage: serve_torch.py BUNDLE_DIR PORT
"""
import json
import sys

import torch
import uvicorn
from fastapi import FastAPI, HTTPException, Request
from safetensors.torch import load_file

bundle, port = sys.argv[1], int(sys.argv[2])
with open(f"{bundle}/model.json") as f:
    config = json.load(f)
with open(f"{bundle}/bundle.json") as f:
    index = json.load(f)
labels = index["schema"]["target"]["task"]["labels"]
name = index["name"]


class MLP(torch.nn.Module):
    """dlp's MLP: flatten, Linear + ReLU per hidden layer, Linear (names `layers.<i>`)."""

    def __init__(self, sizes):
        super().__init__()
        self.layers = torch.nn.ModuleList(torch.nn.Linear(a, b) for a, b in zip(sizes, sizes[1:]))

    def forward(self, x):
        x = x.flatten(1)
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i + 1 < len(self.layers):
                x = torch.relu(x)
        return x


weights = load_file(f"{bundle}/model.safetensors")
sizes = [784] + config["hidden"] + [len(labels)]
model = MLP(sizes)
model.load_state_dict(weights)
model.eval()
app = FastAPI()


@app.post(f"/v2/models/{name}/infer")
async def infer(request: Request):
    body = await request.json()
    try:
        t = body["inputs"][0]
        x = torch.tensor(t["data"], dtype=torch.float32).reshape(t["shape"][0], 784) / 255.0
    except (KeyError, IndexError, ValueError, RuntimeError) as e:
        raise HTTPException(status_code=400, detail=str(e))
    with torch.inference_mode():
        probs = torch.softmax(model(x), dim=1)
    best = probs.argmax(dim=1).tolist()
    n = len(best)
    return {
        "model_name": name,
        "model_version": "1",
        "outputs": [
            {"name": "label", "shape": [n], "datatype": "BYTES", "data": [labels[b] for b in best]},
            {"name": "probabilities", "shape": [n, len(labels)], "datatype": "FP32", "data": probs.flatten().tolist()},
        ],
    }


uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")
