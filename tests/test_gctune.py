"""The collector settings a server process applies after start-up (livecommerce/gctune.py)."""

from __future__ import annotations

import gc

from livecommerce import gctune


def test_tune_freezes_start_up_and_raises_the_thresholds() -> None:
    before = gc.get_threshold()
    try:
        gctune.tune()
        assert gc.get_threshold() == (
            gctune.GEN0_THRESHOLD,
            gctune.GEN1_THRESHOLD,
            gctune.GEN2_THRESHOLD,
        )
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
