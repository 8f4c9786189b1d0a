"""What the examples share: their command line and their closing result line.

Each example is run as ``python examples/NAME.py [--quick]``; its last line is
``result: <metric> <value> (baseline <name> <value>)``, which
tests/test_examples.py reads.
"""

import argparse
import time


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
