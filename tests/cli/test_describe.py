"""`mixrep describe`: what it prints and writes, and its refusals (exit code 2, a message naming the file and
the fix, nothing written)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mixrep.audio.io import write_audio
from mixrep.cli import main as mixrep_main
from mixrep.constants import STEMS
from mixrep.styles.settings_vector import INDEX, NUM_SETTINGS
from tests.inference.test_describe import known_checkpoint, line, normalised

SR = 22_050  # the tiny checkpoints' rate (configs/demo.yaml); their clip is 1.5 s


def stem_folder(folder, seconds: float = 3.0, seed: int = 0, mono: str = "", silent: bool = False,
                skip: str = ""):
    """Four stereo stems of tones in noise; ``mono`` names a stem written with one channel."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    for i, stem in enumerate(STEMS):
        if stem == skip:
            continue
        x = (0.1 * np.sin(2 * np.pi * 110 * (i + 1) * t) + 0.02 * rng.standard_normal(t.size)).astype(np.float32)
        x = 0 * x if silent else x
        write_audio(folder / f"{stem}.wav", x[None] if stem == mono else np.stack([x, 0.7 * x]), SR)
    return folder


@pytest.fixture(scope="module")
def known(tiny_decoder_checkpoint, tmp_path_factory):
    """A decoder checkpoint reading a +10 dB bass shelf, a 0.88-likely vocal compressor and a 0.12-likely
    drum saturation; its relative decoder reads +10 dB more at 60 Hz on the bass."""
    change = torch.zeros(NUM_SETTINGS)
    change[INDEX["bass.eq_60hz_db"]] = 2.5
    settings = normalised({"bass.eq_60hz_db": 10.0, "vocals.compressor": 2.0, "vocals.compressor_reduction_db": 4.0,
                           "drums.saturation": -2.0, "drums.saturation_drive_db": 12.0})
    return known_checkpoint(tiny_decoder_checkpoint, tmp_path_factory.mktemp("known") / "known.ckpt", settings,
                            change)


def describe(*args) -> list[str]:
    return ["describe", *map(str, args)]


def test_describe_prints_the_decoded_settings_and_writes_json(known, tmp_path, capsys):
    song = stem_folder(tmp_path / "song")
    out = tmp_path / "out" / "song.json"
    assert mixrep_main(describe(song, "--checkpoint", known, "--json", out, "--max-clips", "2")) == 0
    text = capsys.readouterr().out
    assert f"{song} (2 clips):" in text
    assert "EQ +10.0 dB at 60 Hz" in line(text, "bass")
    assert "compressor 4.0 dB gain reduction (p=0.88)" in line(text, "vocals")
    assert "saturation" not in line(text, "drums")
    data = json.loads(out.read_text())
    assert data["input"] == str(song) and data["clips"] == 2 and len(data["model_hash"]) == 16
    assert data["settings"]["bass.eq_60hz_db"]["value"] == pytest.approx(10.0, abs=1e-3)
    assert mixrep_main(describe(song, "--checkpoint", known, "--all", "--max-clips", "1")) == 0
    assert "saturation driven 12.0 dB (p=0.12)" in line(capsys.readouterr().out, "drums")


def test_compare_prints_what_turns_one_mix_into_the_other(known, tmp_path, capsys):
    a, b = stem_folder(tmp_path / "a"), stem_folder(tmp_path / "b", seed=1)
    out = tmp_path / "changes.json"
    assert mixrep_main(describe(a, "--checkpoint", known, "--compare", b, "--json", out)) == 0
    text = capsys.readouterr().out
    assert f"to turn {a} into {b}:" in text and "bass.eq_60hz_db: +10.00 dB" in text
    data = json.loads(out.read_text())
    assert data["compare"] == str(b) and data["changes"]["bass.eq_60hz_db"]["change"] == pytest.approx(10.0)


@pytest.mark.parametrize(("make", "message"), [
    (lambda root: stem_folder(root / "song", silent=True), "song is silent"),
    (lambda root: stem_folder(root / "song", seconds=1.2), "drums.wav lasts 1.20 s, shorter than the encoder's 1.5 s clip"),
    (lambda root: stem_folder(root / "song", mono="bass"), "bass.wav is mono"),
    (lambda root: stem_folder(root / "song", skip="vocals"), "song has no vocals file"),
    (lambda root: write_audio(root / "mix.wav", 0.1 * np.ones((1, 3 * SR), np.float32), SR), "mix.wav is mono"),
    (lambda root: root / "nothing.wav", "nothing.wav"),
], ids=["silent", "short", "mono-stem", "missing-stem", "mono-mix", "missing-file"])
def test_bad_inputs_exit_2_naming_the_file_and_write_nothing(known, tmp_path, capsys, monkeypatch, make, message):
    from mixrep.inference.style_encoder import StyleEncoder

    def no_embedding(*args, **kwargs):
        raise AssertionError("an input was embedded before every input was checked")

    monkeypatch.setattr(StyleEncoder, "embed_stems_clips", no_embedding)
    monkeypatch.setattr(StyleEncoder, "embed_file_clips", no_embedding)
    song, good = make(tmp_path), stem_folder(tmp_path / "good")
    out = tmp_path / "out.json"
    for args in (describe(song, "--json", out), describe(good, "--compare", song, "--json", out)):
        assert mixrep_main([*args, "--checkpoint", str(known)]) == 2
        err = capsys.readouterr().err
        assert message in err and str(tmp_path) in err, err
        assert not out.exists()


def test_a_checkpoint_without_decoder_is_refused_with_the_fix(tiny_checkpoint, tmp_path, capsys):
    song = stem_folder(tmp_path / "song")
    out = tmp_path / "out.json"
    assert mixrep_main(describe(song, "--checkpoint", tiny_checkpoint, "--json", out)) == 2
    err = capsys.readouterr().err
    assert "trained for retrieval only" in err and "settings_weight > 0" in err
    assert not out.exists()


def test_no_checkpoint_and_none_shipped_asks_for_one(tmp_path, capsys, monkeypatch):
    from mixrep.inference import pretrained

    monkeypatch.setattr(pretrained, "SHIPPED_CHECKPOINT", tmp_path / "missing.ckpt")
    assert mixrep_main(describe(stem_folder(tmp_path / "song"))) == 2
    assert "pass --checkpoint" in capsys.readouterr().err


def test_json_on_an_input_or_unwritable_is_refused_before_any_work(known, tmp_path, capsys):
    song = stem_folder(tmp_path / "song")
    other = stem_folder(tmp_path / "other", seed=1)
    mix = write_audio(tmp_path / "mix.wav", 0.1 * np.ones((2, 3 * SR), np.float32), SR)
    before = {p: p.read_bytes() for p in [*song.iterdir(), *other.iterdir(), mix, known]}
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    absent = tmp_path / "absent.ckpt"  # a checkpoint that does not exist: the refusal must come before it is read
    for args in (describe(song, "--json", song / "bass.wav", "--checkpoint", absent),
                 describe(mix, "--json", mix, "--checkpoint", absent),
                 describe(song, "--compare", other, "--json", other / "drums.wav", "--checkpoint", absent),
                 describe(song, "--json", known, "--checkpoint", known),
                 describe(song, "--json", blocker / "out.json", "--checkpoint", absent),
                 describe(song, "--json", tmp_path, "--checkpoint", absent)):
        assert mixrep_main(args) == 2, args
        err = capsys.readouterr().err
        assert "--json" in err and "absent.ckpt" not in err, err
    assert {p: p.read_bytes() for p in before} == before


def test_max_clips_below_one_is_refused(known, tmp_path, capsys):
    assert mixrep_main(describe(stem_folder(tmp_path / "song"), "--checkpoint", known, "--max-clips", "0")) == 2
    assert "max_clips must be at least 1, got 0" in capsys.readouterr().err
