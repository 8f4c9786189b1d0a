"""One rank of the DistributedDataParallel test in test_torch.py.

Started by ``torch.multiprocessing`` (spawn) from the test: each of two ranks
joins a gloo group on the loopback, wraps a ``fastrnn.torch.LSTM`` and a
linear head in ``DistributedDataParallel``, runs its own half of a batch
forward and backward, and saves its (all-reduced, averaged) gradients and how
many times the fastrnn kernels ran.
"""

import datetime
import os

import torch
from torch import nn

import fastrnn
import fastrnn.functional
import fastrnn.torch

T, N, INPUT, HIDDEN = 5, 8, 3, 4


class Net(nn.Module):
    """A fastrnn LSTM (two layers, both directions) and a linear head."""

    def __init__(self):
        super().__init__()
        self.rnn = fastrnn.torch.LSTM(INPUT, HIDDEN, num_layers=2, bidirectional=True,
                                      dtype=torch.float64)
        self.head = nn.Linear(2 * HIDDEN, 1, dtype=torch.float64)

    def forward(self, x):
        y, _ = self.rnn(x)
        return self.head(y)


def make_problem():
    """The same model and whole batch (x, target) in every process."""
    torch.manual_seed(1234)
    model = Net()
    x = torch.randn(T, N, INPUT, dtype=torch.float64)
    target = torch.randn(T, N, 1, dtype=torch.float64)
    return model, x, target


def run(rank, world_size, port, out_dir):
    """Entry point of one rank (``torch.multiprocessing.spawn`` passes ``rank``)."""
    torch.set_num_threads(1)
    fastrnn.set_num_threads(1)
    calls = {"forward": 0, "backward": 0}
    forward, backward = fastrnn.functional.stack_forward, fastrnn.functional.stack_backward

    def counted_forward(*args, **kwargs):
        calls["forward"] += 1
        return forward(*args, **kwargs)

    def counted_backward(*args, **kwargs):
        calls["backward"] += 1
        return backward(*args, **kwargs)

    fastrnn.functional.stack_forward = counted_forward
    fastrnn.functional.stack_backward = counted_backward

    torch.distributed.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world_size,
        timeout=datetime.timedelta(seconds=60))
    try:
        model, x, target = make_problem()
        ddp = nn.parallel.DistributedDataParallel(model)
        half = N // world_size
        rows = slice(rank * half, (rank + 1) * half)
        loss = nn.functional.mse_loss(ddp(x[:, rows]), target[:, rows])
        loss.backward()
        grads = {name: p.grad.clone() for name, p in model.named_parameters()}
        torch.save({"grads": grads, "calls": calls, "loss": loss.item()},
                   os.path.join(out_dir, f"rank{rank}.pt"))
        # both ranks done before either tears the group down: a rank whose
        # peer left mid-exchange may abort inside gloo
        torch.distributed.barrier()
    finally:
        torch.distributed.destroy_process_group()
