"""A streaming service: an LSTM cell fed one frame at a time, its state carried.

A speech or sensor service gets one frame, must answer before the next, and
keeps the recurrent state between frames.  This example streams frames
through ``fastrnn.LSTMCell`` and through frozen copies of it
(``fastrnn.freeze``: weights prepared once, in float32, bfloat16 and int8),
times every step (``time.perf_counter_ns``), and prints the per-step
latency's median (p50) and 99th percentile (p99).

Data: the cepstral frames of the JapaneseVowels recordings that sktime ships
(``sktime.datasets.load_japanese_vowels``, 12 coefficients a frame), played
back to back as one stream; the state is reset at the start of each
recording, as a service resets it per utterance.  The weights are PyTorch's
initialisation (seeded): latency does not depend on their values.  Baseline:
the same step written in plain NumPy (two matrix-vector products and the
gate arithmetic), fed the same frames; the streams must agree (float32 to
rounding, bfloat16 and int8 within their documented error).

    python examples/streaming.py [--quick]
"""

import time

import numpy as np

import fastrnn

from common import Clock, japanese_vowels, parser, result

# What is streamed: the cell as it was trained, and frozen copies of it (its
# weights prepared once) in each precision: name -> how the float32 cell
# becomes the one that runs, and the largest difference from the NumPy step
# allowed (relative to the largest |h|: float32 rounding, or what SPEC
# documents for the reduced precisions, about 0.3 % and 1 %, with room).
VARIANTS = {
    "cell float32": (lambda cell: cell, 1e-4),
    "frozen float32": (fastrnn.freeze, 1e-4),
    "frozen bfloat16": (lambda cell: fastrnn.freeze(cell, dtype="bfloat16"), 2e-2),
    "frozen int8": (lambda cell: fastrnn.freeze(cell, dtype="int8"), 5e-2),
}


def numpy_step(weights):
    """One LSTM step in plain NumPy, gates i, f, g, o as PyTorch."""
    w_ih, w_hh = weights["weight_ih"], weights["weight_hh"]
    bias = weights["bias_ih"] + weights["bias_hh"]
    H = w_hh.shape[1]

    def step(x, state):
        h, c = (np.zeros(H, np.float32),) * 2 if state is None else state
        z = w_ih @ x + w_hh @ h + bias
        i, f = 1 / (1 + np.exp(-z[:H])), 1 / (1 + np.exp(-z[H:2 * H]))
        g, o = np.tanh(z[2 * H:3 * H]), 1 / (1 + np.exp(-z[3 * H:]))
        c = f * c + i * g
        return o * np.tanh(c), c
    return step


def stream(step, recordings, n_frames):
    """Feed ``n_frames`` frames one at a time; per-step latencies (µs) and last outputs."""
    latencies = np.empty(n_frames)
    outputs = []
    k = 0
    while k < n_frames:
        for rec in recordings:
            state = None                         # a new utterance
            for frame in rec:
                t0 = time.perf_counter_ns()
                state = step(frame, state)
                latencies[k] = (time.perf_counter_ns() - t0) / 1e3
                k += 1
                if k == n_frames:
                    break
            outputs.append(state[0])
            if k == n_frames:
                break
    return latencies, np.stack(outputs)


def main():
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--hidden-size", type=int, default=256)
    p.add_argument("--frames", type=int, default=100_000, help="frames streamed per engine")
    p.add_argument("--threads", type=int, default=1,
                   help="fastrnn threads per step (default 1: one step at N = 1 is too "
                        "small to share, and a service runs one stream per core)")
    args = p.parse_args()
    if args.quick:
        args.frames = 20_000
    clock = Clock()
    recordings = japanese_vowels("train")[0] + japanese_vowels("test")[0]
    n_features = recordings[0].shape[1]
    cell = fastrnn.LSTMCell(n_features, args.hidden_size, seed=args.seed)
    print(f"JapaneseVowels frames: {len(recordings)} recordings, {args.frames} frames "
          f"streamed per engine; LSTMCell({n_features}, {args.hidden_size}), "
          f"{args.threads} thread(s)")
    engines = {name: make(cell) for name, (make, _) in VARIANTS.items()}
    engines["numpy"] = numpy_step(cell.state_dict())
    stream(engines["numpy"], recordings, 1000)               # warm up
    p50 = {}
    outputs = {}
    print(f"{'engine':18s}{'p50 µs':>9s}{'p99 µs':>9s}")
    for name, step in engines.items():
        with fastrnn.threads(args.threads):
            stream(step, recordings, 1000)
            latencies, outputs[name] = stream(step, recordings, args.frames)
        p50[name] = float(np.percentile(latencies, 50))
        print(f"{name:18s}{p50[name]:9.1f}{np.percentile(latencies, 99):9.1f}", flush=True)
    scale = float(np.max(np.abs(outputs["numpy"])))
    errors = {name: float(np.max(np.abs(outputs[name] - outputs["numpy"]))) / scale
              for name in VARIANTS}
    for name, err in errors.items():
        print(f"{name:18s} largest difference from numpy {err:.1e} (of the largest |h|)")
        if err > VARIANTS[name][1]:
            raise SystemExit(f"{name} and numpy disagree: {err:.2e} > {VARIANTS[name][1]:.0e}")
    print("all engines agree with numpy (float32 to rounding, the reduced precisions "
          "within their documented error)")
    print(f"run time {clock}")
    result("p50_step_us", p50["frozen float32"], "numpy_step_us", p50["numpy"])


if __name__ == "__main__":
    main()
