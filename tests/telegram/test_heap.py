"""A worker serves with start-up's objects out of the cycle collector's walks
(bot/telegram/_heap.py): what was alive when it began is frozen, what is made later is not."""

from __future__ import annotations

import gc
import weakref

import pytest

from bot.telegram._heap import frozen_startup_heap


class Node:
    def __init__(self) -> None:
        self.me = self  # a cycle: only the cycle collector frees it


def test_what_lives_before_serving_is_left_alone_and_given_back_after() -> None:
    before = Node()
    was_before = weakref.ref(before)
    with frozen_startup_heap() as frozen:
        assert frozen > 0
        during = Node()
        was_during = weakref.ref(during)
        del before, during
        gc.collect()
        assert was_during() is None  # a cycle made while serving is collected as ever
        assert was_before() is not None  # start-up's objects are not walked
    assert gc.get_freeze_count() == 0
    gc.collect()
    assert was_before() is None  # given back: collectable again


def test_the_heap_is_given_back_when_serving_fails() -> None:
    with pytest.raises(RuntimeError), frozen_startup_heap():
        raise RuntimeError("serving stopped")
    assert gc.get_freeze_count() == 0
