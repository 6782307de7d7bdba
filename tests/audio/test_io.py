"""Segment reads, resampling, channel handling and bad input of mixrep.audio.io."""

from __future__ import annotations

import numpy as np
import pytest

from mixrep.audio.io import audio_info, read_audio, read_segment, to_stereo, write_audio
from mixrep.errors import AudioReadError

SR = 44_100


def sine(freq_hz: float, seconds: float, sample_rate: int = SR, channels: int = 2) -> np.ndarray:
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    x = 0.5 * np.sin(2 * np.pi * freq_hz * t).astype(np.float32)
    return np.stack([x * (1.0 - 0.3 * c) for c in range(channels)])


def noise(seconds: float, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal((2, int(seconds * SR))) * 0.1).astype(np.float32)


@pytest.mark.parametrize("ext", ["wav", "flac", "mp3", "ogg"])
def test_crop_by_seconds_equals_the_same_samples_of_the_full_decode(tmp_path, ext):
    path = write_audio(tmp_path / f"x.{ext}", noise(3.0), SR)
    full = read_audio(path)
    crop = read_segment(path, 1.25, 0.5)
    start = int(1.25 * SR)
    assert crop.shape == (2, SR // 2)
    np.testing.assert_allclose(crop, full[:, start:start + SR // 2], atol=1e-6)


def test_lossless_roundtrip_is_exact_to_16_bit(tmp_path):
    x = noise(1.0)
    np.testing.assert_allclose(read_audio(write_audio(tmp_path / "x.flac", x)), x, atol=2 / 2**15)


def test_resampling_keeps_duration_and_pitch(tmp_path):
    path = write_audio(tmp_path / "x48.wav", sine(1000.0, 2.0, 48_000), 48_000)
    audio = read_segment(path, 0.5, 1.0, sample_rate=SR)
    assert audio.shape == (2, SR)
    spectrum = np.abs(np.fft.rfft(audio[0]))
    peak_hz = np.argmax(spectrum) * SR / audio.shape[1]
    assert abs(peak_hz - 1000.0) <= 1.0


def test_mono_file_is_duplicated_to_stereo(tmp_path):
    path = write_audio(tmp_path / "mono.wav", sine(440.0, 1.0, channels=1), SR)
    audio = read_audio(path)
    assert audio.shape == (2, SR)
    np.testing.assert_array_equal(audio[0], audio[1])


def test_info_reads_header_only(tmp_path):
    path = write_audio(tmp_path / "x.flac", noise(2.5)[:, : int(2.5 * 22_050)], 22_050)
    seconds, rate, channels = audio_info(path)
    assert rate == 22_050 and channels == 2
    assert seconds == pytest.approx(2.5, abs=1e-4)


def test_segment_past_the_end_is_zero_padded(tmp_path):
    path = write_audio(tmp_path / "x.wav", noise(1.0))
    audio = read_segment(path, 0.75, 0.5)
    assert audio.shape == (2, SR // 2)
    assert np.all(audio[:, SR // 4 + 1:] == 0) and np.any(audio[:, : SR // 4] != 0)


def test_corrupt_file_raises_a_clear_error(tmp_path):
    path = tmp_path / "broken.mp3"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(AudioReadError, match="broken.mp3"):
        read_segment(path, 0.0, 1.0)
    with pytest.raises(AudioReadError, match="broken.mp3"):
        audio_info(path)


def test_missing_file_and_bad_arguments(tmp_path):
    with pytest.raises(AudioReadError, match="nope.wav"):
        audio_info(tmp_path / "nope.wav")
    path = write_audio(tmp_path / "x.wav", noise(0.5))
    with pytest.raises(ValueError, match="unsupported sample_rate"):
        read_segment(path, 0.0, 0.1, sample_rate=1000)
    with pytest.raises(ValueError, match=">= 0"):
        read_segment(path, -1.0, 0.1)
    with pytest.raises(ValueError, match="6 channels"):
        to_stereo(np.zeros((6, 10)))


def test_write_is_atomic_on_failure(tmp_path, monkeypatch):
    import mixrep.audio.io as io

    target = write_audio(tmp_path / "x.wav", noise(0.5))
    before = target.read_bytes()

    real_audio_file = io.AudioFile

    class DiesMidWrite:
        """Writes half of the samples to the real file, then the "process dies"."""

        def __init__(self, *args, **kwargs):
            self.file = real_audio_file(*args, **kwargs)

        def __enter__(self):
            self.file.__enter__()
            return self

        def __exit__(self, *exc):
            return self.file.__exit__(*exc)

        def write(self, samples):
            self.file.write(samples[:, : samples.shape[1] // 2])
            raise KeyboardInterrupt

    monkeypatch.setattr(io, "AudioFile", DiesMidWrite)
    with pytest.raises(KeyboardInterrupt):
        write_audio(target, noise(1.0, seed=1))
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["x.wav"]


def test_wav_is_float_and_keeps_peaks_above_full_scale(tmp_path):
    """A hot mix written as WAV comes back sample for sample, peaks above 0 dBFS included."""
    x = noise(0.5) * 30.0  # peaks far above 1.0
    assert np.abs(x).max() > 1.0
    back = read_audio(write_audio(tmp_path / "hot.wav", x))
    np.testing.assert_array_equal(back, x)


def test_flac_clips_with_a_peak_report(tmp_path, caplog):
    x = noise(0.5)
    x[0, 100] = 2.0  # +6 dBFS
    with caplog.at_level("WARNING"):
        back = read_audio(write_audio(tmp_path / "hot.flac", x))
    assert "hot.flac: peak 6.02 dBFS, 1 samples above full scale" in caplog.text
    assert abs(back[0, 100] - 1.0) < 1e-4 and np.abs(back).max() <= 1.0 + 1e-6
    caplog.clear()
    write_audio(tmp_path / "quiet.flac", noise(0.5))
    assert "dBFS" not in caplog.text


def test_non_finite_audio_is_refused_and_nothing_written(tmp_path):
    x = noise(0.5)
    x[1, 7] = np.nan
    with pytest.raises(ValueError, match="1 of .* samples are NaN or infinite"):
        write_audio(tmp_path / "bad.wav", x)
    assert not list(tmp_path.iterdir())
