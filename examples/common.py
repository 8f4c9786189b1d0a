"""What the examples share: their command line, their closing result line and
the JapaneseVowels recordings that two of them read.

Each example is run as ``python examples/NAME.py [--quick]``; its last line is
``result: <metric> <value> (baseline <name> <value>)``, which
tests/test_examples.py reads.
"""

import argparse
import time

import numpy as np


def parser(description):
    """The command line every example takes: ``--quick`` and ``--seed``."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true",
                   help="a CI-sized run of well under a minute (the defaults take minutes)")
    p.add_argument("--seed", type=int, default=0, help="seeds every random draw (default 0)")
    return p


class Clock:
    """Seconds since it was made, for the run time each example prints."""

    def __init__(self):
        self.start = time.perf_counter()

    def __str__(self):
        return f"{time.perf_counter() - self.start:.1f} s"


def result(metric, value, baseline, baseline_value):
    """Print the closing line: ``result: metric value (baseline name value)``."""
    print(f"result: {metric} {value:.4g} (baseline {baseline} {baseline_value:.4g})",
          flush=True)


def japanese_vowels(split):
    """sktime's JapaneseVowels ``split`` ("train" or "test") as arrays.

    Returns
    -------
    recordings : list of ndarray, float32, (T_i, 12)
        One array per recording, its frames of 12 cepstral coefficients.
    labels : ndarray of int
        Each recording's speaker, 0-8.
    """
    from sktime.datasets import load_japanese_vowels
    frame, labels = load_japanese_vowels(split=split)
    recordings = [np.stack([np.asarray(frame.iloc[i, j].dropna(), np.float32)
                            for j in range(frame.shape[1])], axis=1)
                  for i in range(len(frame))]
    return recordings, np.asarray(labels).astype(int) - 1
