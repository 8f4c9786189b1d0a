"""``python -m fastrnn.bench``: see ``fastrnn.bench.cli``."""

import sys

from fastrnn.bench.cli import main

if __name__ == "__main__":
    sys.exit(main())
