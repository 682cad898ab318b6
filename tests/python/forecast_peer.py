"""PyTorch and statsmodels peers of the shipped forecasting configs, on the same windows.

    python3 forecast_peer.py sunspots   # configs/sunspots-gru.yaml
    python3 forecast_peer.py sensor     # configs/sensor-forecast.yaml

Set-up: python3 -m venv /tmp/peer && /tmp/peer/bin/pip install torch numpy statsmodels

The windows are cut as `preprocess.series` cuts them (docs/time-series.md): the last
round(n * test) steps are the test window, round(n * validation) before them (after a gap) the
validation window, the rest training; an example is a forecast origin t whose `horizon` targets
all lie in one window, its inputs the `history` steps before t (every channel) and the known
covariates of the steps ahead. Channels are standardised with the training window's mean and
population standard deviation. The network has the config's shape (PyTorch's own initialisation),
trains with Adam at the config's learning rate and batch size, shuffled each epoch, stopping
early on the validation loss with the best weights restored. MASE's scale is the in-sample
seasonal-naive MAE of the steps before the test window. Prints the MASE of three PyTorch seeds,
of statsmodels' AutoReg with the config's lags (fitted on every step before the test window,
forecast recursively from each origin), and of a ridge regression (alpha 1, intercept not
penalised, as scikit-learn's Ridge) per step ahead on the network's inputs.
"""

import csv
import os
import sys

import numpy as np
import torch
from statsmodels.tsa.ar_model import AutoReg

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "..", "data")

SETUPS = {
    "sunspots": dict(
        path=os.path.join(DATA, "sunspots", "sunspots.csv"), target="SUNACTIVITY", covariates=[], known=[],
        history=22, horizon=1, season=11, ar_lags=9, validation=0.1, test=0.13, gap=0,
        cell="gru", hidden=32, head=[], epochs=200, batch=16, lr=0.003, patience=30,
    ),
    "sensor": dict(
        path=os.path.join(DATA, "sensor-series", "machine_room.csv"), target="temperature",
        covariates=["outside"], known=["load"], history=48, horizon=24, season=24, ar_lags=48,
        validation=0.15, test=0.15, gap=24, cell="lstm", hidden=64, head=[64], epochs=100, batch=32,
        lr=0.001, patience=15,
    ),
}


def windows(n, validation, test, gap):
    n_test, n_val = round(n * test), round(n * validation)
    test_start = n - n_test
    val_end = max(test_start - gap, 0)
    val_start = max(val_end - n_val, 0)
    train_end = val_end if n_val == 0 else max(val_start - gap, 0)
    return train_end, (val_start, val_end if n_val else val_start), test_start


class Net(torch.nn.Module):
    def __init__(self, s, channels):
        super().__init__()
        rnn = torch.nn.GRU if s["cell"] == "gru" else torch.nn.LSTM
        self.rnn = rnn(channels, s["hidden"], batch_first=True)
        dims = [s["hidden"] + s["horizon"] * len(s["known"])] + s["head"] + [s["horizon"]]
        self.head = torch.nn.ModuleList(torch.nn.Linear(a, b) for a, b in zip(dims, dims[1:]))

    def forward(self, past, future):
        _, h = self.rnn(past)
        h = (h[0] if isinstance(h, tuple) else h)[-1]
        y = torch.cat([h, future], 1) if future.shape[1] else h
        for j, layer in enumerate(self.head):
            y = layer(y)
            if j < len(self.head) - 1:
                y = torch.relu(y)
        return y


def main(name):
    s = SETUPS[name]
    rows = list(csv.DictReader(open(s["path"])))
    names = [s["target"]] + s["covariates"] + s["known"]
    x = np.array([[float(r[c]) for c in names] for r in rows])
    n, (h, k) = len(x), (s["history"], s["horizon"])
    train_end, (val_start, val_end), test_start = windows(n, s["validation"], s["test"], s["gap"])
    mean, std = x[:train_end].mean(0), x[:train_end].std(0)
    z = (x - mean) / std
    first_known = 1 + len(s["covariates"])

    def part(start, end):
        origins = list(range(max(start, h), end - k + 1))
        past = np.stack([z[t - h:t] for t in origins])
        future = np.stack([z[t:t + k, first_known:].reshape(-1) for t in origins])
        y = np.stack([z[t:t + k, 0] for t in origins])
        return origins, past, future, y

    tr, va, te = part(0, train_end), part(val_start, val_end), part(test_start, n)
    y = x[:, 0]
    m = s["season"]
    before = y[:test_start]
    scale = np.mean(np.abs(before[m:] - before[:-m]))
    actual = np.stack([y[t:t + k] for t in te[0]])

    def mase(pred):
        return np.mean(np.abs(pred - actual)) / scale

    torch.set_num_threads(2)
    results = []
    for seed in (0, 1, 2):
        torch.manual_seed(seed)
        net = Net(s, len(names))
        opt = torch.optim.Adam(net.parameters(), lr=s["lr"])
        t = lambda a: torch.tensor(a, dtype=torch.float32)
        data = [t(a) for a in tr[1:]]
        vx = [t(a) for a in va[1:]]
        best, best_state, waited = float("inf"), None, 0
        for epoch in range(s["epochs"]):
            net.train()
            order = torch.randperm(len(data[0]))
            for i in range(0, len(order), s["batch"]):
                b = order[i:i + s["batch"]]
                loss = torch.nn.functional.mse_loss(net(data[0][b], data[1][b]), data[2][b])
                opt.zero_grad()
                loss.backward()
                opt.step()
            net.eval()
            with torch.no_grad():
                val = torch.nn.functional.mse_loss(net(vx[0], vx[1]), vx[2]).item()
            if val < best:
                best, waited = val, 0
                best_state = {k_: v.clone() for k_, v in net.state_dict().items()}
            else:
                waited += 1
                if waited >= s["patience"]:
                    break
        net.load_state_dict(best_state)
        with torch.no_grad():
            pred = net(t(te[1]), t(te[2])).numpy() * std[0] + mean[0]
        results.append(mase(pred))
        print(f"PyTorch {s['cell'].upper()} seed {seed}: MASE {results[-1]:.4f} ({epoch + 1} epochs)")
    print(f"PyTorch median MASE {np.median(results):.4f}")

    ar = AutoReg(before, lags=s["ar_lags"], trend="c").fit()
    c, phi = ar.params[0], ar.params[1:]
    preds = []
    for t0 in te[0]:
        window = list(y[:t0][-s["ar_lags"]:])
        out = []
        for _ in range(k):
            v = c + sum(p * window[-1 - j] for j, p in enumerate(phi))
            out.append(v)
            window.append(v)
        preds.append(out)
    print(f"statsmodels AutoReg(lags={s['ar_lags']}, trend='c'): MASE {mase(np.array(preds)):.4f}")

    def features(p):
        return np.concatenate([p[1].reshape(len(p[0]), -1), p[2]], 1)

    a, b = features(tr), features(te)
    am, ym = a.mean(0), tr[3].mean(0)
    w = np.linalg.solve((a - am).T @ (a - am) + np.eye(a.shape[1]), (a - am).T @ (tr[3] - ym))
    ridge = ((b - am) @ w + ym) * std[0] + mean[0]
    print(f"ridge (alpha 1) per step on the network's inputs: MASE {mase(ridge):.4f}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "sunspots")
