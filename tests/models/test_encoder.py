"""MixStyleEncoder: conditioning, ablations, clip lengths, gradients, determinism, learning."""

from __future__ import annotations

import math

import pytest
import torch

from mixrep.models.encoder import EncoderConfig, MixStyleEncoder, count_parameters
from mixrep.training.losses import info_nce

NUM_FEATURES = 5
LOG_FLOOR_DB = -100.0


def tiny_config(**overrides: object) -> EncoderConfig:
    base = {
        "num_features": NUM_FEATURES,
        "n_mels": 40,
        "channels": (4, 6),
        "embedding_dim": 16,
        "film_hidden_dim": 8,
        "attention_hidden_dim": 8,
    }
    base.update(overrides)
    return EncoderConfig(**base)  # type: ignore[arg-type]


def mel_batch(batch: int, frames: int = 16, n_mels: int = 40) -> torch.Tensor:
    """Log-mel-like values in dB (around -40 dB, std 10 dB)."""
    return -40.0 + 10.0 * torch.randn(batch, 8, n_mels, frames)


def raw_features(batch: int) -> torch.Tensor:
    """Mix features in physical units: LUFS, dB, correlation, ..."""
    return torch.stack(
        [
            -14 + 3 * torch.randn(batch),
            6 + 4 * torch.randn(batch),
            torch.rand(batch) * 2 - 1,
            -20 + 5 * torch.randn(batch),
            torch.rand(batch),
        ],
        dim=1,
    )


def warmed_up(encoder: MixStyleEncoder) -> MixStyleEncoder:
    """A few train-mode passes so BatchNorm running stats fit the data scale, then eval."""
    encoder.train()
    with torch.no_grad():
        for _ in range(5):
            encoder(mel_batch(8, n_mels=encoder.config.n_mels), raw_features(8))
    return encoder.eval()


@pytest.mark.parametrize("n_frames", [2, 3, 16, 101])
def test_any_clip_length_gives_the_same_output_shape(n_frames: int) -> None:
    torch.manual_seed(0)
    encoder = warmed_up(MixStyleEncoder(tiny_config()))
    out = encoder(mel_batch(3, n_frames), raw_features(3))
    assert out.shape == (3, 16)
    assert torch.isfinite(out).all()


def test_too_short_clip_raises_a_clear_error() -> None:
    encoder = MixStyleEncoder(tiny_config()).eval()
    assert encoder.min_frames == 2
    with pytest.raises(ValueError, match="at least 2"):
        encoder(mel_batch(2, frames=1), raw_features(2))


@pytest.mark.parametrize("training", [True, False])
def test_silence_at_the_log_floor_gives_finite_embeddings(training: bool) -> None:
    torch.manual_seed(0)
    encoder = warmed_up(MixStyleEncoder(tiny_config()))
    encoder.train(training)
    silence = torch.full((4, 8, 40, 16), LOG_FLOOR_DB)
    out = encoder(silence, raw_features(4))
    assert torch.isfinite(out).all()
    assert torch.isfinite(encoder.embed(silence, raw_features(4))).all()


def test_film_conditioning_changes_the_output_and_the_no_film_ablation_ignores_features() -> None:
    torch.manual_seed(0)
    mel = mel_batch(4)
    features, other_features = raw_features(4), raw_features(4)

    with_film = warmed_up(MixStyleEncoder(tiny_config()))
    a, b = with_film(mel, features), with_film(mel, other_features)
    assert (a - b).abs().max().item() > 1e-4

    no_film = warmed_up(MixStyleEncoder(tiny_config(use_film=False)))
    assert no_film.film is None
    assert torch.equal(no_film(mel, features), no_film(mel, other_features))
    assert torch.equal(no_film(mel, features), no_film(mel))


def test_ablation_switches_build_the_intended_architecture() -> None:
    assert MixStyleEncoder(tiny_config()).n_bands == 3
    assert MixStyleEncoder(tiny_config(band_split=False)).n_bands == 1
    mean = MixStyleEncoder(tiny_config(pooling="mean"))
    assert not any("pooling" in name for name, _ in mean.named_parameters())
    out = warmed_up(mean)(mel_batch(2), raw_features(2))
    assert out.shape == (2, 16)


def test_mean_pooling_ablation_projects_the_plain_mean_of_frame_features() -> None:
    torch.manual_seed(0)
    encoder = warmed_up(MixStyleEncoder(tiny_config(pooling="mean")))
    mel, features = mel_batch(2), raw_features(2)
    frames = encoder.frame_features(mel, features)
    assert torch.allclose(encoder.frame_weights(mel, features), torch.full((2, 8), 1 / 8))
    expected = encoder.projection(frames.mean(dim=1))
    assert torch.allclose(encoder(mel, features), expected, atol=1e-6)


def test_embed_is_unit_norm_and_eval_mode_is_deterministic() -> None:
    torch.manual_seed(0)
    encoder = warmed_up(MixStyleEncoder(tiny_config(dropout=0.5)))
    mel, features = mel_batch(3), raw_features(3)
    first, second = encoder(mel, features), encoder(mel, features)
    assert torch.equal(first, second)
    norms = encoder.embed(mel, features).norm(dim=1)
    assert torch.allclose(norms, torch.ones(3), atol=1e-6)
    encoder.train()
    assert not torch.equal(encoder(mel, features), encoder(mel, features))  # dropout active


def test_gradients_reach_every_parameter() -> None:
    torch.manual_seed(0)
    encoder = MixStyleEncoder(tiny_config()).train()
    mel, features = mel_batch(12), raw_features(12)
    emb = encoder(mel, features)
    info_nce(emb[:4], emb[4:8], emb[8:]).loss.backward()
    missing = [
        name
        for name, p in encoder.named_parameters()
        if p.grad is None or p.grad.abs().max() == 0
    ]
    assert missing == []


def test_bad_inputs_raise_clear_errors() -> None:
    encoder = MixStyleEncoder(tiny_config()).eval()
    with pytest.raises(ValueError, match="n_mels=40"):
        encoder(mel_batch(2, n_mels=64), raw_features(2))
    with pytest.raises(ValueError, match="pass the mix features"):
        encoder(mel_batch(2))
    with pytest.raises(ValueError, match="num_features=5"):
        encoder(mel_batch(2), torch.randn(2, 4))
    bad = raw_features(2)
    bad[0, 1] = -math.inf
    with pytest.raises(ValueError, match="infinite"):
        encoder(mel_batch(2), bad)
    with pytest.raises(ValueError, match="num_features"):
        EncoderConfig(num_features=0)
    with pytest.raises(ValueError, match="pooling"):
        tiny_config(pooling="max")


def test_config_round_trips_through_a_dict_and_presets_have_the_documented_sizes() -> None:
    cfg = tiny_config(pooling="mean")
    assert EncoderConfig(**cfg.to_dict()) == cfg
    demo, proto = EncoderConfig.demo(24), EncoderConfig.prototype(24)
    assert (demo.n_mels, demo.embedding_dim, demo.feature_branch_dim) == (64, 128, 64)  # configs/demo.yaml
    assert (proto.n_mels, proto.embedding_dim) == (128, 768)
    assert (proto.band_size, proto.band_overlap) == (20, 10)
    assert count_parameters(MixStyleEncoder(demo)) < count_parameters(MixStyleEncoder(proto))


def test_a_few_dozen_steps_lower_the_infonce_loss_and_raise_accuracy() -> None:
    """Positive = anchor + 5 dB noise; hard negative = anchor + 5 dB noise with drums +6 dB.

    The other triplets of the batch are unrelated random clips (the easy negatives). With a
    random hard negative instead, the untrained encoder already ranks every positive first
    (accuracy 1.0), so the test could not show learning; a +6 dB drum change is the kind of
    mix difference the encoder must learn to see.
    """
    torch.manual_seed(0)
    batch = 8
    encoder = MixStyleEncoder(tiny_config(dropout=0.0))
    optimizer = torch.optim.AdamW(encoder.parameters(), lr=3e-3)

    def triplets(generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        mel = -40.0 + 10.0 * torch.randn(batch, 8, 40, 16, generator=generator)
        positive = mel + 5.0 * torch.randn(mel.shape, generator=generator)
        negative = mel + 5.0 * torch.randn(mel.shape, generator=generator)
        negative[:, 0:2] += 6.0  # drums L/R louder by 6 dB
        features = raw_features(batch)
        return torch.cat([mel, positive, negative]), torch.cat([features] * 3)

    held_out = triplets(torch.Generator().manual_seed(123))

    def evaluate() -> tuple[float, float]:
        encoder.eval()
        with torch.no_grad():
            emb = encoder(*held_out)
            out = info_nce(emb[:batch], emb[batch : 2 * batch], emb[2 * batch :])
        encoder.train()
        return out.loss.item(), out.accuracy.item()

    # Fit BatchNorm running statistics before the baseline so eval mode is meaningful.
    encoder.train()
    with torch.no_grad():
        for _ in range(3):
            encoder(*triplets(torch.Generator().manual_seed(7)))
    loss_before, accuracy_before = evaluate()
    generator = torch.Generator().manual_seed(1)
    for _ in range(40):
        mel, features = triplets(generator)
        emb = encoder(mel, features)
        loss = info_nce(emb[:batch], emb[batch : 2 * batch], emb[2 * batch :]).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    loss_after, accuracy_after = evaluate()
    assert loss_after < 0.5 * loss_before, (loss_before, loss_after)
    assert accuracy_before <= 0.25, accuracy_before
    assert accuracy_after >= 0.75, accuracy_after
