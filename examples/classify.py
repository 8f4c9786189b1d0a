"""Who is speaking: a bidirectional LSTM over variable-length recordings.

Many to one, as sentiment analysis or activity recognition: each recording is
a sequence of 7 to 29 frames of 12 cepstral coefficients, and the label is one
of 9 speakers.  A model written with ``torch.nn`` (``nn.LSTM`` and a linear
head) is switched to fastrnn's kernels by ``fastrnn.torch.convert``; the
variable lengths go in as a ``PackedSequence``; it trains with torch's Adam.

Data: the JapaneseVowels recordings (9 male speakers uttering /ae/, Kudo,
Toyama and Shimbo 1999, UCI) that sktime ships
(``sktime.datasets.load_japanese_vowels``), with its own split: 270
recordings to train on, 370 to test.  Baseline: the majority class (the most
frequent speaker of the test set, the best any constant answer can score).

    python examples/classify.py [--quick]
"""

import collections

import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import pack_sequence

import fastrnn.torch

from common import Clock, japanese_vowels, parser, result


class SpeakerNet(nn.Module):
    """A bidirectional LSTM; the last states of both directions feed a linear layer."""

    def __init__(self, n_features, hidden_size, n_classes):
        super().__init__()
        self.lstm = nn.LSTM(n_features, hidden_size, bidirectional=True)
        self.head = nn.Linear(2 * hidden_size, n_classes)

    def forward(self, packed):
        _, (h_n, _) = self.lstm(packed)              # h_n: (2, N, H), each at its own end
        return self.head(torch.cat([h_n[0], h_n[1]], dim=1))


def batch(seqs, mean, std):
    # pack_sequence sorts by length itself (enforce_sorted=False) and unsorts h_n.
    return pack_sequence([torch.from_numpy((s - mean) / std) for s in seqs],
                         enforce_sorted=False)


def main():
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--hidden-size", type=int, default=64)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=16)
    args = p.parse_args()
    if args.quick:
        args.hidden_size, args.epochs = 32, 8
    clock = Clock()
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    train_x, train_y = japanese_vowels("train")
    test_x, test_y = japanese_vowels("test")
    frames = np.concatenate(train_x)
    mean, std = frames.mean(0), frames.std(0)
    lengths = [len(s) for s in train_x + test_x]
    print(f"JapaneseVowels: {len(train_x)} training and {len(test_x)} test recordings, "
          f"{min(lengths)}-{max(lengths)} frames of {frames.shape[1]} coefficients, "
          f"{train_y.max() + 1} speakers")

    model = fastrnn.torch.convert(SpeakerNet(frames.shape[1], args.hidden_size, 9))
    print(f"model: {model.lstm!r} ({type(model.lstm).__module__}.{type(model.lstm).__name__})")
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    loss_fn = nn.CrossEntropyLoss()
    labels = torch.from_numpy(train_y)
    for epoch in range(1, args.epochs + 1):
        order = rng.permutation(len(train_x))
        total = 0.0
        for start in range(0, len(order), args.batch_size):
            idx = order[start:start + args.batch_size]
            optimizer.zero_grad()
            loss = loss_fn(model(batch([train_x[i] for i in idx], mean, std)), labels[idx])
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            total += loss.item() * len(idx)
        if epoch % max(args.epochs // 5, 1) == 0 or epoch == args.epochs:
            print(f"  epoch {epoch:3d}  training loss {total / len(order):.4f}", flush=True)

    with torch.no_grad():
        predicted = model(batch(test_x, mean, std)).argmax(1).numpy()
    accuracy = float(np.mean(predicted == test_y))
    majority = collections.Counter(test_y.tolist()).most_common(1)[0][1] / len(test_y)
    print(f"run time {clock}")
    result("accuracy", accuracy, "majority_class", majority)


if __name__ == "__main__":
    main()
