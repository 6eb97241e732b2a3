"""How ``ticketing serve`` sets up each worker process (the server itself runs in the
end-to-end and fault tests)."""

from __future__ import annotations

import gc

from api.server import GC_YOUNG_THRESHOLD, tune_the_collector


def _collectable(obj: object) -> bool:
    return any(o is obj for generation in range(3) for o in gc.get_objects(generation))


def test_the_collector_leaves_the_start_up_heap_alone_and_runs_rarer():
    before = gc.get_threshold()
    try:
        gc.unfreeze()
        start_up = [[n] for n in range(1000)]  # long-lived objects made before tuning
        assert _collectable(start_up[0])
        tune_the_collector()
        assert gc.get_freeze_count() >= len(start_up)
        assert not _collectable(start_up[0])
        assert gc.get_threshold() == (GC_YOUNG_THRESHOLD, *before[1:])
        later = [len(start_up)]
        assert _collectable(later)  # what is made afterwards is still collected
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
