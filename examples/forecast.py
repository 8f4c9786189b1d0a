"""Forecasting a year of atmospheric CO2 with a GRU trained by NumPy and fastrnn alone.

Many to one: the GRU reads the last ``--window`` months of the Mauna Loa CO2
record and a linear head on its last state predicts the next 12 months.  It
is trained with backpropagation through time by ``forward_train`` /
``backward`` (the head's gradient enters as ``dstate_n``), a few lines of
Adam and ``fastrnn.utils.clip_grad_norm``; no PyTorch.

Data: the weekly Mauna Loa CO2 concentrations (ppm, March 1958 to December
2001) that statsmodels ships (``statsmodels.datasets.co2``), averaged by
month, gaps interpolated.  The last ``--test-years`` of forecast origins are
held out.  Baseline: the seasonal-naive forecast (each month as it was a year
before), scored by the mean absolute error over all 12 horizons.

    python examples/forecast.py [--quick]
"""

import numpy as np

import fastrnn
from fastrnn.utils import clip_grad_norm

from common import Clock, parser, result

HORIZON = 12                     # months ahead
SCALE = 3.0                      # ppm: inputs and targets are divided by it


def load_monthly_co2():
    """Monthly mean CO2 (ppm) and the month of each (0-11), from statsmodels."""
    import statsmodels.api as sm
    weekly = sm.datasets.co2.load_pandas().data["co2"]
    monthly = weekly.resample("MS").mean().interpolate()
    return monthly.to_numpy(np.float64), monthly.index.month.to_numpy() - 1


def windows(series, month, window, origins):
    """Inputs (window, N, 3) and targets (N, 12), both relative to the last value.

    Features per step: the value minus the origin's value, over SCALE, and
    the month as a point on the unit circle.
    """
    x = np.empty((window, len(origins), 3), np.float32)
    target = np.empty((len(origins), HORIZON), np.float32)
    for n, t in enumerate(origins):      # t: the last observed month
        past = series[t - window + 1:t + 1]
        angle = 2 * np.pi * month[t - window + 1:t + 1] / 12
        x[:, n, 0] = (past - series[t]) / SCALE
        x[:, n, 1] = np.cos(angle)
        x[:, n, 2] = np.sin(angle)
        target[n] = (series[t + 1:t + 1 + HORIZON] - series[t]) / SCALE
    return x, target


def train(x, target, hidden_size, steps, lr, seed, log_every):
    """The GRU and the head's (W, b), trained on full batches by BPTT + Adam."""
    gru = fastrnn.GRU(x.shape[2], hidden_size, seed=seed)
    rng = np.random.default_rng(seed)
    bound = 1 / np.sqrt(hidden_size)
    params = gru.state_dict()
    params["head.weight"] = rng.uniform(-bound, bound, (HORIZON, hidden_size)).astype(np.float32)
    params["head.bias"] = np.zeros(HORIZON, np.float32)
    m = {k: np.zeros_like(v) for k, v in params.items()}
    v = {k: np.zeros_like(p) for k, p in params.items()}
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    for step in range(1, steps + 1):
        gru.load_state_dict({k: p for k, p in params.items() if not k.startswith("head.")})
        _, h_n, cache = gru.forward_train(x)
        h_last = h_n[0]                                  # (N, H)
        pred = h_last @ params["head.weight"].T + params["head.bias"]
        err = pred - target
        loss = float(np.mean(err ** 2))
        dpred = 2 * err / err.size
        _, _, grads = gru.backward(cache, dstate_n=(dpred @ params["head.weight"])[None])
        grads["head.weight"] = dpred.T @ h_last
        grads["head.bias"] = dpred.sum(axis=0)
        norm = clip_grad_norm(grads, 1.0)
        # Adam (Kingma & Ba), bias-corrected.
        for k, g in grads.items():
            m[k] = beta1 * m[k] + (1 - beta1) * g
            v[k] = beta2 * v[k] + (1 - beta2) * g * g
            m_hat = m[k] / (1 - beta1 ** step)
            v_hat = v[k] / (1 - beta2 ** step)
            params[k] -= (lr * m_hat / (np.sqrt(v_hat) + eps)).astype(np.float32)
        if step % log_every == 0 or step == steps:
            print(f"  step {step:5d}  train MSE {loss * SCALE ** 2:.4f} ppm^2  "
                  f"gradient norm {norm:.3f}", flush=True)
    gru.load_state_dict({k: p for k, p in params.items() if not k.startswith("head.")})
    return gru, params["head.weight"], params["head.bias"]


def main():
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--window", type=int, default=48, help="months read before a forecast")
    p.add_argument("--hidden-size", type=int, default=64)
    p.add_argument("--steps", type=int, default=1000, help="Adam steps (full batches)")
    p.add_argument("--test-years", type=int, default=10)
    args = p.parse_args()
    if args.quick:
        args.window, args.hidden_size, args.steps = 36, 32, 200
    clock = Clock()
    series, month = load_monthly_co2()
    T = len(series)
    first_test = T - HORIZON - 12 * args.test_years + 1
    train_origins = np.arange(args.window - 1, first_test - HORIZON)
    test_origins = np.arange(first_test, T - HORIZON)
    print(f"Mauna Loa CO2, {T} months; {len(train_origins)} training windows, "
          f"{len(test_origins)} test forecasts of {HORIZON} months; {args.steps} Adam steps, "
          f"GRU hidden {args.hidden_size}, {fastrnn.get_num_threads()} threads")
    x, target = windows(series, month, args.window, train_origins)
    gru, w, b = train(x, target, args.hidden_size, args.steps, 3e-3, args.seed,
                      max(args.steps // 10, 1))

    x_test, target_test = windows(series, month, args.window, test_origins)
    _, h_n = gru(x_test)
    pred = (h_n[0] @ w.T + b) * SCALE + series[test_origins, None]
    truth = target_test * SCALE + series[test_origins, None]
    seasonal_naive = np.stack([series[test_origins + h - 12] for h in range(1, HORIZON + 1)], 1)
    mae = float(np.mean(np.abs(pred - truth)))
    mae_naive = float(np.mean(np.abs(seasonal_naive - truth)))
    print(f"test MAE by horizon (ppm), GRU:            "
          f"{' '.join(f'{e:.2f}' for e in np.mean(np.abs(pred - truth), 0))}")
    print(f"test MAE by horizon (ppm), seasonal naive: "
          f"{' '.join(f'{e:.2f}' for e in np.mean(np.abs(seasonal_naive - truth), 0))}")
    print(f"run time {clock}")
    result("mae_ppm", mae, "seasonal_naive", mae_naive)


if __name__ == "__main__":
    main()
