"""Start-up objects are frozen out of the cyclic GC, so its full collections skip them."""

from __future__ import annotations

import gc

from signaling.startup.serve import freeze_startup_objects


def test_freezing_takes_the_loaded_modules_out_of_full_collections() -> None:
    gc.unfreeze()
    try:
        before = len(gc.get_objects())  # what a full collection walks
        frozen = freeze_startup_objects()
        assert frozen == gc.get_freeze_count()
        assert frozen >= before // 2  # the signaling app and the media plane are imported here
        assert len(gc.get_objects()) < before - frozen // 2
    finally:
        gc.unfreeze()
