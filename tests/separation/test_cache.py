"""StemCache and CachedSeparation: crops, keys, and atomic writes under kills and races."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from tests.separation.conftest import tiny_htdemucs

from mixrep.tracks import Track
from mixrep.errors import DatasetError, SeparationError
from mixrep.separation.base import TrackStems
from mixrep.separation.cache import StemCache
from mixrep.separation.cached import CachedSeparation
from mixrep.separation.demucs import DemucsSeparator

SR = 44_100


class CountingSeparator:
    def __init__(self, separator):
        self.inner, self.calls = separator, 0
        self.name, self.sample_rate = separator.name, separator.sample_rate

    def separate(self, mix):
        self.calls += 1
        return self.inner.separate(mix)


def test_crops_are_slices_of_the_full_separation_and_come_only_from_the_cache(tmp_path, wav):
    separator = CountingSeparator(DemucsSeparator("tiny", model=tiny_htdemucs()))
    stems = CachedSeparation(separator, StemCache(tmp_path / "cache"), sample_rate=SR)
    assert isinstance(stems, TrackStems)
    track = Track("song", 3.0, audio_path=wav)
    full = stems.separate_track(track)
    assert full.shape == (4, 2, 3 * SR) and separator.calls == 1

    crop = stems.read(track, 1.25, 0.5)  # miss: separates the whole track once
    assert separator.calls == 2 and track in stems
    start = int(1.25 * SR)
    np.testing.assert_array_equal(crop, full[..., start:start + SR // 2].astype(np.float16).astype(np.float32))
    np.testing.assert_allclose(crop, full[..., start:start + SR // 2], rtol=2**-11, atol=1e-7)

    tail = stems.read(track, 2.75, 0.5)  # hit, runs 0.25 s past the end: zero-padded
    assert separator.calls == 2 and tail.shape == (4, 2, SR // 2) and tail.dtype == np.float32
    np.testing.assert_array_equal(tail[..., : SR // 4], full[..., -SR // 4:].astype(np.float16).astype(np.float32))
    assert not tail[..., SR // 4:].any()
    assert stems.ensure(track) is False and separator.calls == 2


def test_key_follows_the_file_and_the_separator(tmp_path, wav):
    cache = StemCache(tmp_path / "cache")
    key = cache.key(wav, "demucs-a", SR)
    assert cache.key(wav, "demucs-a", SR) == key
    assert cache.key(wav, "demucs-b", SR) != key and cache.key(wav, "demucs-a", 48_000) != key
    cache.put(wav, "demucs-a", SR, np.ones((4, 2, 10), np.float32))
    assert (wav, "demucs-a", SR) in cache
    stat = wav.stat()
    os.utime(wav, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))  # same bytes, newer mtime
    assert cache.key(wav, "demucs-a", SR) != key and cache.get(wav, "demucs-a", SR) is None
    touched = cache.key(wav, "demucs-a", SR)
    with open(wav, "ab") as f:
        f.write(b"\0\0\0\0")
    os.utime(wav, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))  # same mtime, bigger file
    assert cache.key(wav, "demucs-a", SR) not in (key, touched)


def test_entries_round_trip_and_unrepresentable_stems_are_refused(tmp_path, wav):
    cache = StemCache(tmp_path / "cache")
    stems = np.random.default_rng(0).standard_normal((4, 2, 1000)).astype(np.float32)
    entry = cache.put(wav, "s", SR, stems)
    loaded = cache.get(wav, "s", SR)
    assert isinstance(loaded, np.memmap) and loaded.dtype == np.float16 and loaded.shape == (4, 2, 1000)
    np.testing.assert_allclose(loaded, stems, rtol=2**-11)
    assert cache.info(wav, "s", SR)["samples"] == 1000 and entry.parent.parent == cache.root
    with pytest.raises(SeparationError, match="not finite in float16"):
        cache.put(wav, "t", SR, np.full((4, 2, 10), 1e5, np.float32))  # float16 max is 65504
    with pytest.raises(ValueError, match=r"\(4, 2, samples\), got \(2, 10\)"):
        cache.put(wav, "t", SR, np.zeros((2, 10), np.float32))
    assert cache.get(wav, "t", SR) is None


def test_a_write_that_fails_midway_leaves_no_entry_and_no_temp_file(tmp_path, wav, monkeypatch):
    cache = StemCache(tmp_path / "cache")

    def half_write(f, array, allow_pickle):
        f.write(b"\x93NUMPY" + b"\0" * 1000)
        raise OSError("No space left on device")

    monkeypatch.setattr(np.lib.format, "write_array", half_write)
    with pytest.raises(OSError, match="No space left"):
        cache.put(wav, "s", SR, np.zeros((4, 2, 100), np.float32))
    assert cache.get(wav, "s", SR) is None and (wav, "s", SR) not in cache
    assert not cache.entry_path(cache.key(wav, "s", SR)).exists() and not any(cache.tmp.iterdir())


WRITER = textwrap.dedent("""
    import sys, time, pathlib
    import numpy as np
    from mixrep.separation.cache import StemCache
    root, wav, value, go, mode = sys.argv[1:6]
    if mode == "stall":  # write half of the data, say so, then hang until killed
        def stalling_write(f, array, allow_pickle):
            f.write(array.tobytes()[: array.nbytes // 2])
            f.flush()
            pathlib.Path(go).touch()
            time.sleep(60)
        np.lib.format.write_array = stalling_write
    else:
        while not pathlib.Path(go).exists():
            time.sleep(0.001)
    stems = np.full((4, 2, 2_000_000), float(value), np.float32)
    StemCache(root, clean_stale=False).put(wav, "s", 44100, stems)
""")


def _writer(tmp_path, wav, value, go, mode):
    return subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path / "cache"), str(wav), str(value), str(go), mode])


def _wait_for(predicate, seconds=30.0):
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting for the writer subprocess"
        time.sleep(0.01)


def test_a_writer_killed_mid_write_leaves_no_entry_and_its_temp_file_is_cleaned(tmp_path, wav):
    go = tmp_path / "half-written"
    writer = _writer(tmp_path, wav, 1.0, go, "stall")
    try:
        _wait_for(go.exists)
        os.kill(writer.pid, signal.SIGKILL)
    finally:
        writer.wait(timeout=30)
    cache = StemCache(tmp_path / "cache", clean_stale=False)
    assert cache.get(wav, "s", SR) is None and (wav, "s", SR) not in cache
    assert not cache.entry_path(cache.key(wav, "s", SR)).exists()
    leftovers = list(cache.tmp.iterdir())
    assert len(leftovers) == 1 and leftovers[0].stat().st_size > 1_000_000  # the killed writer's partial file
    assert cache.clean_stale() == 1 and not any(cache.tmp.iterdir())


def test_concurrent_writers_of_one_key_leave_one_complete_entry(tmp_path, wav):
    go = tmp_path / "go"
    writers = [_writer(tmp_path, wav, value, go, "race") for value in (1.0, 2.0)]
    time.sleep(0.5)
    go.touch()
    assert [w.wait(timeout=60) for w in writers] == [0, 0]
    cache = StemCache(tmp_path / "cache")
    stems = cache.get(wav, "s", SR)
    assert stems is not None and stems.shape == (4, 2, 2_000_000)
    values = np.unique(np.asarray(stems[:, :, ::997]))
    assert len(values) == 1 and values[0] in (1.0, 2.0)  # all of one writer, never a mix
    assert stems[-1, -1, -1] == values[0] and not any(cache.tmp.iterdir())


def test_max_separate_seconds_bounds_the_work_and_rejects_crops_beyond_it(tmp_path, wav):
    separator = DemucsSeparator("tiny", model=tiny_htdemucs())
    stems = CachedSeparation(separator, StemCache(tmp_path / "cache"), max_separate_seconds=2.0)
    track = Track("song", 3.0, audio_path=wav)
    assert stems.read(track, 1.0, 1.0).shape == (4, 2, SR)
    assert stems.cache.get(wav, stems.name, SR).shape == (4, 2, 2 * SR) and stems.name.endswith("-first2s")
    with pytest.raises(DatasetError, match=r"past the first 2 s that were separated"):
        stems.read(track, 1.5, 1.0)


def test_tracks_without_a_mixture_file_are_refused(tmp_path):
    stems = CachedSeparation(DemucsSeparator("tiny", model=tiny_htdemucs()), StemCache(tmp_path / "cache"))
    with pytest.raises(DatasetError, match="synth-0001 has no audio_path"):
        stems.read(Track("synth-0001", 3.0), 0.0, 1.0)
