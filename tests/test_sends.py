"""Partition choice of keyed records: what a keyed Kafka producer picks, memoized within a bound."""

from __future__ import annotations

from stream.sends import PARTITION_CACHE_KEYS, cached_partition, key_partition


def test_cached_partition_is_the_keyed_producers_choice() -> None:
    cache: dict[str, int] = {}
    keys = [f"svc-{i}/HighLatency" for i in range(200)]
    assert [cached_partition(cache, k, 4) for k in keys] == [key_partition(k.encode(), 4) for k in keys]
    assert {cached_partition(cache, k, 4) for k in keys} == {0, 1, 2, 3}
    assert [cached_partition(cache, k, 4) for k in keys] == [key_partition(k.encode(), 4) for k in keys]  # cached


def test_the_cache_stays_bounded_however_many_keys_the_alerts_bring() -> None:
    cache: dict[str, int] = {}
    for i in range(3 * PARTITION_CACHE_KEYS):  # e.g. a source putting a request id into the service label
        assert cached_partition(cache, f"req-{i}/Error", 8) == key_partition(f"req-{i}/Error".encode(), 8)
        assert len(cache) <= PARTITION_CACHE_KEYS
