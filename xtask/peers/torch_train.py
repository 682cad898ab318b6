"""Peer for `cargo xtask bench train`: PyTorch on the CPU, the same work as train_bench.
Usage: torch_train.py {mlp|cnn} EPOCHS DATA_DIR -> one JSON object (the keys train_bench prints).

The training loop is ../shared/bench/torch_mnist.py's (MNIST-10k, first 8,000 records train in
order, last 2,000 test, batch 128, AdamW lr 1e-3 without weight decay, fp32), with the epoch
timed over the training batches only (as the pipeline's `samples_per_sec`), then the trained
network's forward pass timed at batch 1 and batch 256 under `torch.no_grad()`.
"""
import gzip, json, statistics, sys, time
import numpy as np, torch, torch.nn as nn

arch, epochs, d = sys.argv[1], int(sys.argv[2]), sys.argv[3]
torch.manual_seed(0)
img = np.frombuffer(gzip.open(f"{d}/t10k-images-idx3-ubyte.gz").read()[16:], np.uint8).astype(np.float32) / 255.0
lab = np.frombuffer(gzip.open(f"{d}/t10k-labels-idx1-ubyte.gz").read()[8:], np.uint8).astype(np.int64)
x = torch.from_numpy(img.reshape(10000, 784)); y = torch.from_numpy(lab)
xtr, xte, ytr, yte = x[:8000], x[8000:], y[:8000], y[8000:]
if arch == "mlp":
    net = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 10))
else:
    net = nn.Sequential(nn.Unflatten(1, (1, 28, 28)), nn.Conv2d(1, 6, 5), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                        nn.Linear(256, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10))
opt = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=0.0)
lossf = nn.CrossEntropyLoss(); bs = 128
rates, loss = [], None
for e in range(epochs):
    net.train(); total, n = 0.0, 0
    t = time.perf_counter()
    for i in range(0, 8000, bs):
        opt.zero_grad(); l = lossf(net(xtr[i:i+bs]), ytr[i:i+bs]); l.backward(); opt.step()
        total += l.item() * len(ytr[i:i+bs]); n += len(ytr[i:i+bs])
    rates.append(8000 / (time.perf_counter() - t)); loss = total / n
net.eval()
def median_time(warmup, runs, f):
    for _ in range(warmup): f()
    ts = []
    for _ in range(runs):
        t = time.perf_counter(); f(); ts.append(time.perf_counter() - t)
    return statistics.median(ts)
with torch.no_grad():
    acc = (net(xte).argmax(1) == yte).float().mean().item()
    ones = [xte[i:i+1] for i in range(200)]; k = [0]
    def one():
        net(ones[k[0] % len(ones)]); k[0] += 1
    latency = median_time(50, 1000, one)
    batch = xte[:256]
    batch_time = median_time(5, 50, lambda: net(batch))
hwm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))
print(json.dumps({"config": f"torch {arch}", "threads": torch.get_num_threads(), "train_samples_per_sec": rates,
                  "train_loss": loss, "test_accuracy": acc, "latency_b1_ms": latency * 1e3,
                  "throughput_b256": 256 / batch_time, "peak_rss_kib": hwm}))
