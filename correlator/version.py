"""The installed package's version, for `aiops --version` and the `aiops_build_info` metric."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _installed

__all__ = ["DISTRIBUTION", "version"]

DISTRIBUTION = "aiops-correlator"


def version() -> str:
    """The version pip installed (pyproject's), or "unknown" when run from a tree that was never installed."""
    try:
        return _installed(DISTRIBUTION)
    except PackageNotFoundError:
        return "unknown"
