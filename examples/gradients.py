"""The vanishing and the exploding gradient, measured with ``backward``.

Backpropagation through time multiplies the gradient by one step's Jacobian
per step back.  This example measures ``||dL/dh_t||`` against ``t`` over a
long sequence, where the loss ``L`` reads only the last state ``h_T`` (a
linear readout predicting the next value, squared error), for an Elman RNN,
an LSTM and a GRU (``fastrnn.RNN`` / ``LSTM`` / ``GRU``, 64 units):

- at PyTorch's initialisation;
- with the path through time opened, as trained networks learn to: the
  LSTM's forget gate and the GRU's update gate biased to stay open (+3), and
  the RNN's recurrent matrix made orthogonal with gain 1.5 (larger than 1:
  the regime where its gradient explodes instead).

``dL/dh_t`` is the ``dstate0`` that ``backward`` returns for the suffix of the
sequence that starts at ``t`` from the state the forward pass reached there.
With clipping (``fastrnn.utils.clip_grad_norm``, global norm 1) every
gradient of the step is scaled by one factor: clipping leaves the shape of the
curve alone (it cannot undo vanishing) but bounds what an exploding gradient
does to the weights; the last table shows one SGD step with and without it.

Data: the weekly Mauna Loa CO2 record that statsmodels ships
(``statsmodels.datasets.co2``, 2284 weeks), as standardised weekly changes,
read in windows of ``--seq-len`` weeks.  Result: how many steps back the
open LSTM keeps ``||dL/dh_t||`` above 1e-3 of ``||dL/dh_T||``, against the
Elman RNN at PyTorch's initialisation.

    python examples/gradients.py [--quick] [--plot FILE]
"""

import copy
import os
import tempfile

import numpy as np

import fastrnn
from fastrnn.utils import clip_grad_norm

from common import Clock, parser, result

HIDDEN = 64
REACH = 1e-3                 # the reach: steps back until ||dL/dh_t|| < REACH * ||dL/dh_T||


def load_changes():
    import statsmodels.api as sm
    weekly = sm.datasets.co2.load_pandas().data["co2"].interpolate().to_numpy(np.float64)
    change = np.diff(weekly)
    return ((change - change.mean()) / change.std()).astype(np.float32)


def networks(seed):
    """{name: module}: each cell at PyTorch's initialisation and with its path opened."""
    out = {}
    for kind in ("RNN", "LSTM", "GRU"):
        out[f"{kind} default"] = getattr(fastrnn, kind)(1, HIDDEN, seed=seed)
    H = HIDDEN
    lstm = copy.deepcopy(out["LSTM default"])
    lstm.bias_ih_l0[H:2 * H] += 3.0                    # gates i, f, g, o: f
    gru = copy.deepcopy(out["GRU default"])
    gru.bias_ih_l0[H:2 * H] += 3.0                     # gates r, z, n: z
    rnn = copy.deepcopy(out["RNN default"])
    q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((H, H)))
    rnn.weight_hh_l0[...] = 1.5 * q
    out.update({"RNN gain 1.5": rnn, "LSTM open": lstm, "GRU open": gru})
    return out


def readout(seed):
    return np.random.default_rng(seed + 1).uniform(-1, 1, HIDDEN).astype(np.float32) / 8


def loss_and_grads(module, x, target, w):
    """The loss, ``dL/dh_t`` at every probe t (norms), and the weight gradients."""
    T = x.shape[0]
    lstm = isinstance(module, fastrnn.LSTM)
    y, state, cache = module.forward_train(x)
    err = y[-1] @ w - target                           # (N,)
    loss = 0.5 * float(np.mean(err ** 2))
    dh_T = (err / len(err))[:, None] * w[None, :]      # dL/dh_T, (N, H)
    zero = np.zeros_like(dh_T)[None]
    dstate_n = (dh_T[None], zero) if lstm else dh_T[None]
    _, _, grads = module.backward(cache, None, dstate_n)
    # dL/dh_t: backward over the suffix x[t:], started from the state at t.
    probes = np.unique(np.round(np.geomspace(1, T, 40)).astype(int)) - 1   # steps back
    norms = {0: float(np.linalg.norm(dh_T))}
    for back in probes[probes > 0]:
        t = T - back                                   # the suffix starts after step t
        start = (y[t - 1][None], _cell_state(module, x[:t])) if lstm else y[t - 1][None]
        _, _, suffix_cache = module.forward_train(x[t:], start)
        _, dstate0, _ = module.backward(suffix_cache, None, dstate_n)
        with np.errstate(over="ignore"):               # inf: past what float32 holds
            norms[int(back)] = float(np.linalg.norm(dstate0[0] if lstm else dstate0))
    return loss, norms, grads


def _cell_state(module, x_prefix):
    return module(x_prefix)[1][1]


def reach(norms):
    """Steps back until the norm first falls below REACH times its value at T."""
    below = [k for k, v in sorted(norms.items()) if v < REACH * norms[0]]
    return below[0] if below else max(norms)


def sgd_step_loss(module, grads, x, target, w, lr, max_norm):
    """The loss after one SGD step of rate ``lr``, clipped to ``max_norm`` or not."""
    grads = {k: g.copy() for k, g in grads.items()}
    if max_norm is not None:
        clip_grad_norm(grads, max_norm)
    stepped = copy.deepcopy(module)
    stepped.load_state_dict({k: v - lr * grads[k] for k, v in module.state_dict().items()})
    y, _ = stepped(x)
    with np.errstate(all="ignore"):
        return 0.5 * float(np.mean((y[-1] @ w - target) ** 2))


def plot(curves, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot")
        return
    fig, ax = plt.subplots(figsize=(7, 4.2))
    styles = {"RNN": "tab:red", "LSTM": "tab:blue", "GRU": "tab:green"}
    for name, norms in curves.items():
        back = np.array(sorted(norms))
        rel = np.array([norms[k] for k in back]) / norms[0]
        ax.plot(back + 1, rel, color=styles[name.split()[0]],
                linestyle="-" if "default" in name else "--", label=name)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_ylim(1e-12, 1e6)
    ax.axhline(REACH, color="grey", linewidth=0.8, linestyle=":")
    ax.set_xlabel("steps back from the loss, T - t + 1")
    ax.set_ylabel("||dL/dh_t|| / ||dL/dh_T||")
    ax.set_title("Gradient through time (fastrnn backward, 64 units)")
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"plot saved to {path}")


def main():
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--seq-len", type=int, default=1000)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--plot", default=os.path.join(tempfile.gettempdir(), "gradients.png"),
                   help="where the plot goes (PNG)")
    args = p.parse_args()
    if args.quick:
        args.seq_len, args.batch_size = 300, 8
    clock = Clock()
    changes = load_changes()
    T, N = args.seq_len, args.batch_size
    starts = np.linspace(0, len(changes) - T - 1, N).astype(int)
    x = np.stack([changes[s:s + T] for s in starts], axis=1)[:, :, None]   # (T, N, 1)
    target = np.array([changes[s + T] for s in starts], np.float32)
    w = readout(args.seed)
    print(f"CO2 weekly changes: {N} windows of {T} weeks; loss on the last state only")

    curves, rows = {}, []
    for name, module in networks(args.seed).items():
        loss, norms, grads = loss_and_grads(module, x, target, w)
        curves[name] = norms
        total = clip_grad_norm({k: g.copy() for k, g in grads.items()}, 1e30)
        rows.append((name, loss, norms, total, grads, module))

    shown = [k for k in (0, 9, 29, 99, 299, 999) if k < T]
    print("\n||dL/dh_t|| / ||dL/dh_T|| at T - t steps back, and the reach "
          f"(steps back to {REACH:g}):")
    print(f"{'network':14s}" + "".join(f"{k:>10d}" for k in shown) + f"{'reach':>8s}")
    for name, loss, norms, *_ in rows:
        line = "".join(f"{_at(norms, k) / norms[0]:10.1e}" for k in shown)
        print(f"{name:14s}{line}{reach(norms):8d}")

    print("\nthe weight gradient, and one SGD step (rate 0.01) without and with clipping to 1:")
    print(f"{'network':14s}{'loss':>10s}{'||grad||':>11s}{'unclipped':>12s}{'clipped':>10s}")
    for name, loss, norms, total, grads, module in rows:
        plain = sgd_step_loss(module, grads, x, target, w, 0.01, None)
        clipped = sgd_step_loss(module, grads, x, target, w, 0.01, 1.0)
        print(f"{name:14s}{loss:10.4f}{total:11.3g}{plain:12.4g}{clipped:10.4f}")
    print()
    plot(curves, args.plot)
    print(f"run time {clock}")
    result("lstm_open_reach_steps", reach(curves["LSTM open"]), "rnn_default_reach_steps",
           reach(curves["RNN default"]))


def _at(norms, k):
    """The norm at the probe nearest to k steps back."""
    return norms[min(norms, key=lambda j: abs(j - k))]


if __name__ == "__main__":
    main()
