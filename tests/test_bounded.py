"""The bounded memory every per-process cache uses, and a decision's time budget."""

from __future__ import annotations

import pytest

from function.bounded import LruCache
from function.deadline import Deadline, earliest


def test_the_least_recently_used_entry_goes_first() -> None:
    cache: LruCache[str, int] = LruCache(2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # "b" is now the least recently used
    cache.put("c", 3)
    assert (cache.get("a"), cache.get("b"), cache.get("c"), len(cache)) == (1, None, 3, 2)


def test_a_cache_holds_at_least_one_entry() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        LruCache(0)


def test_a_deadline_clips_waits_to_what_is_left() -> None:
    now = [100.0]
    deadline = Deadline(5.0, lambda: now[0])
    assert (deadline.remaining(), deadline.clip(10.0), deadline.clip(1.0), deadline.expired) == (5.0, 5.0, 1.0, False)
    now[0] = 106.0
    assert (deadline.clip(10.0), deadline.expired) == (0.0, True)


def test_the_earliest_of_two_deadlines() -> None:
    now = [0.0]
    soon, later = Deadline(1.0, lambda: now[0]), Deadline(9.0, lambda: now[0])
    assert (earliest(None, later), earliest(soon, later), earliest(later, soon)) == (later, soon, soon)
