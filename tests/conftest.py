"""Hypothesis profile "ci" (the default; pick another with HYPOTHESIS_PROFILE).

No deadline: the first parse builds the LALR tables and CI machines are noisy. Tests that
need a given number of examples set it themselves with @settings.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from hypothesis import settings

# Engines started by tests compile missing kernels in the foreground or not at all: a
# background worker would outlive the test and compete with the suite for the CPU.
os.environ.setdefault("PQLITE_BACKGROUND", "0")

settings.register_profile("ci", deadline=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@contextmanager
def fresh_kernel_cache(factory: pytest.TempPathFactory) -> Iterator[None]:
    """Kernels compiled meanwhile go to a new, empty cache directory (``PQLITE_CACHE_DIR``,
    read by engine.kernels at compile), so a test module cannot pass on stale kernels."""
    patch = pytest.MonkeyPatch()
    patch.setenv("PQLITE_CACHE_DIR", str(factory.mktemp("kernels")))
    try:
        yield
    finally:
        patch.undo()
