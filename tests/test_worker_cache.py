"""The worker's sticky cache is sized from its memory (yuqing.worker_cache), or set outright; and
glibc's malloc is tuned by the processes that seal payloads (yuqing.malloc.tune_malloc)."""

from __future__ import annotations

import pytest

from yuqing.worker_cache import LARGEST, PER_INCIDENT_MIB, SMALLEST, sticky_cache_size


def test_the_cache_holds_as_many_incidents_as_half_the_memory_allows() -> None:
    # A container with 1 GiB: half of it, at PER_INCIDENT_MIB each.
    one_gib = sticky_cache_size({"YUQING_WORKER_MEMORY_MIB": "1024"})
    assert one_gib.size == int(512 / PER_INCIDENT_MIB)
    assert "YUQING_WORKER_MEMORY_MIB" in one_gib.why
    # Never below SMALLEST, never above LARGEST.
    assert sticky_cache_size({"YUQING_WORKER_MEMORY_MIB": "64"}).size == SMALLEST
    assert sticky_cache_size({"YUQING_WORKER_MEMORY_MIB": "1048576"}).size == LARGEST
    # With nothing said, the machine's (or the cgroup's) memory decides, within the bounds.
    assert SMALLEST <= sticky_cache_size({}).size <= LARGEST


def test_the_cache_size_can_be_set_and_a_bad_value_is_named() -> None:
    assert sticky_cache_size({"YUQING_STICKY_CACHE": "12000"}).size == 12000
    with pytest.raises(ValueError, match="YUQING_STICKY_CACHE='many'"):
        sticky_cache_size({"YUQING_STICKY_CACHE": "many"})
    with pytest.raises(ValueError, match="YUQING_WORKER_MEMORY_MIB"):
        sticky_cache_size({"YUQING_WORKER_MEMORY_MIB": "1G"})


def test_malloc_is_tuned_on_glibc_and_left_alone_elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    import ctypes
    import platform

    from yuqing.malloc import tune_malloc

    assert tune_malloc() is (platform.libc_ver()[0] == "glibc")

    class NotGlibc:  # a C library without glibc's functions (musl, macOS)
        def __init__(self, name: object) -> None:
            pass

    monkeypatch.setattr(ctypes, "CDLL", NotGlibc)
    assert tune_malloc() is False

    def absent(name: object) -> None:
        raise OSError("no C library to load")

    monkeypatch.setattr(ctypes, "CDLL", absent)
    assert tune_malloc() is False
