"""The version of fastrnn: the one place it is written.

pyproject.toml reads it for the package metadata (``dynamic = ["version"]``),
so an installed fastrnn and one built in place report the same number.
"""

__version__ = "0.1.0"
