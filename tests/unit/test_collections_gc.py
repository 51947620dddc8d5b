"""The local runner collects garbage less often while it runs, and leaves the process's settings as they were."""

from __future__ import annotations

import gc
import threading

from shared.runtime.collections_gc import YOUNG_THRESHOLD, fewer_collections


def test_the_youngest_threshold_is_raised_inside_and_restored_after() -> None:
    before = gc.get_threshold()
    with fewer_collections():
        assert gc.get_threshold() == (max(YOUNG_THRESHOLD, before[0]), *before[1:])
    assert gc.get_threshold() == before


def test_a_higher_threshold_already_set_is_never_lowered() -> None:
    before = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD * 2, *before[1:])
    try:
        with fewer_collections():
            assert gc.get_threshold()[0] == YOUNG_THRESHOLD * 2
    finally:
        gc.set_threshold(*before)


def test_overlapping_runs_in_two_threads_restore_the_settings_only_when_the_last_ends() -> None:
    before = gc.get_threshold()
    inside, release = threading.Event(), threading.Event()

    def other() -> None:
        with fewer_collections():
            inside.set()
            release.wait(10)

    t = threading.Thread(target=other)
    t.start()
    inside.wait(10)
    with fewer_collections():
        pass
    assert gc.get_threshold()[0] == max(YOUNG_THRESHOLD, before[0])  # the other run is still going
    release.set()
    t.join(10)
    assert gc.get_threshold() == before


def test_an_error_inside_still_restores_the_settings() -> None:
    before = gc.get_threshold()
    try:
        with fewer_collections():
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    assert gc.get_threshold() == before
