"""Hypothesis profile "ci" (the default; pick another with HYPOTHESIS_PROFILE).

No deadline: the first parse builds the LALR tables and CI machines are noisy. Tests that
need a given number of examples set it themselves with @settings.
"""

from __future__ import annotations

import os

from hypothesis import settings

# Engines started by tests compile missing kernels in the foreground or not at all: a
# background worker would outlive the test and compete with the suite for the CPU.
os.environ.setdefault("PQLITE_BACKGROUND", "0")

settings.register_profile("ci", deadline=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
