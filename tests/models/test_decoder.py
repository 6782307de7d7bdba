"""Settings decoders: wiring into the encoder, checkpoint round trip, refusals, their losses, learning."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mixrep.constants import STEMS
from mixrep.errors import CheckpointError
from mixrep.frontend import FrontEndConfig
from mixrep.inference.style_encoder import load_checkpoint
from mixrep.models.checkpoint import encoder_section, read_encoder, seal
from mixrep.models.decoder import RelativeDecoder, SettingsDecoder
from mixrep.models.encoder import MixStyleEncoder
from mixrep.styles.mix_style import MixStyleConfig, sample_mix_style
from mixrep.styles.settings_vector import NUM_SETTINGS, SETTINGS_VERSION, presence_columns, settings_vector, value_columns
from mixrep.training.losses import relative_settings_loss, settings_loss
from tests.console.conftest import one_thread  # noqa: F401  (autouse: small tensors, one thread)
from tests.models.test_encoder import mel_batch, raw_features, tiny_config, warmed_up

PRESENCE = torch.as_tensor(presence_columns())
VALUES = torch.as_tensor(value_columns())


def with_decoders(**overrides) -> MixStyleEncoder:
    torch.manual_seed(0)
    return warmed_up(MixStyleEncoder(tiny_config(settings_version=SETTINGS_VERSION, decoder_hidden_dim=12,
                                                 **overrides)))


def checkpoint_of(encoder: MixStyleEncoder) -> dict:
    """A checkpoint as training writes it: weights under ``encoder.``, the sealed ``mixrep`` section."""
    state_dict = {f"encoder.{k}": v.clone() for k, v in encoder.state_dict().items()}
    checkpoint = {"state_dict": state_dict,
                  "mixrep": encoder_section(encoder, FrontEndConfig().to_dict(), state_dict)}
    seal(checkpoint)
    return checkpoint


def style_targets(count: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Settings vectors ``(count, NUM_SETTINGS)`` and masks of styles drawn from the mixing-style space."""
    rng = np.random.default_rng(seed)
    vectors = [settings_vector(sample_mix_style(MixStyleConfig(), rng), STEMS, STEMS) for _ in range(count)]
    return (torch.from_numpy(np.stack([v for v, _ in vectors])), torch.from_numpy(np.stack([m for _, m in vectors])))


# ----------------------------------------------------------------------------- the encoder's decoders


def test_an_encoder_with_settings_version_decodes_unit_embeddings():
    encoder = with_decoders()
    assert encoder.decodes_settings
    with torch.no_grad():
        embedding = encoder.embed(mel_batch(3), raw_features(3))
        settings = encoder.decode_settings(embedding)
        relative = encoder.decode_relative(embedding, embedding.flip(0))
    assert settings.shape == relative.shape == (3, NUM_SETTINGS)
    assert torch.isfinite(settings).all() and torch.isfinite(relative).all()
    probabilities = SettingsDecoder.presence_probabilities(settings)
    assert ((probabilities[:, PRESENCE] > 0) & (probabilities[:, PRESENCE] < 1)).all()
    assert torch.equal(probabilities[:, VALUES], settings[:, VALUES])


def test_a_retrieval_only_encoder_refuses_to_decode_clearly():
    encoder = MixStyleEncoder(tiny_config())
    assert not encoder.decodes_settings and encoder.settings_decoder is None
    assert not any(k.startswith(("settings_decoder", "relative_decoder")) for k in encoder.state_dict())
    embedding = F.normalize(torch.randn(2, 16), dim=-1)
    for decode in (lambda: encoder.decode_settings(embedding), lambda: encoder.decode_relative(embedding, embedding)):
        with pytest.raises(ValueError, match="no settings decoder.*settings_weight > 0"):
            decode()


def test_checkpoint_round_trip_keeps_the_decoders(tmp_path):
    encoder = with_decoders()
    path = tmp_path / "encoder.ckpt"
    torch.save(checkpoint_of(encoder), path)
    loaded, _, _ = read_encoder(load_checkpoint(path), str(path))
    assert loaded.decodes_settings and loaded.config.settings_version == SETTINGS_VERSION
    assert loaded.config.decoder_hidden_dim == 12
    embedding = F.normalize(torch.randn(4, 16, generator=torch.Generator().manual_seed(3)), dim=-1)
    with torch.no_grad():
        torch.testing.assert_close(loaded.decode_settings(embedding), encoder.decode_settings(embedding))
        torch.testing.assert_close(loaded.decode_relative(embedding, embedding.roll(1, 0)),
                                   encoder.decode_relative(embedding, embedding.roll(1, 0)))


def test_a_checkpoint_from_before_the_decoders_loads_without_them():
    encoder = MixStyleEncoder(tiny_config())
    checkpoint = checkpoint_of(encoder)
    del checkpoint["mixrep"]["encoder_config"]["settings_version"]  # written before the field existed
    del checkpoint["mixrep"]["encoder_config"]["decoder_hidden_dim"]
    seal(checkpoint)
    loaded, _, _ = read_encoder(checkpoint, "old.ckpt")
    assert not loaded.decodes_settings


def test_an_unknown_settings_version_is_refused():
    with pytest.raises(ValueError, match="settings_version 7 is not a settings layout this mixrep knows"):
        tiny_config(settings_version=7)
    checkpoint = checkpoint_of(with_decoders())
    checkpoint["mixrep"]["encoder_config"]["settings_version"] = SETTINGS_VERSION + 1  # a newer layout
    seal(checkpoint)
    with pytest.raises(CheckpointError, match=f"future.ckpt: .*settings_version {SETTINGS_VERSION + 1}.*upgrade"):
        read_encoder(checkpoint, "future.ckpt")


def test_decoder_weights_are_covered_by_the_checkpoint_hash():
    checkpoint = checkpoint_of(with_decoders())
    key = next(k for k in checkpoint["state_dict"] if k.startswith("encoder.settings_decoder."))
    checkpoint["state_dict"][key] = checkpoint["state_dict"][key] + 0.01
    with pytest.raises(CheckpointError, match="do not match their recorded hash"):
        read_encoder(checkpoint, "edited.ckpt")


# ----------------------------------------------------------------------------- the relative decoder


def test_relative_decoder_predicts_no_presence_and_checks_its_pair():
    torch.manual_seed(0)
    decoder = RelativeDecoder(16, 32)
    with torch.no_grad():
        for layer in decoder.net:
            if isinstance(layer, torch.nn.Linear):
                layer.bias.fill_(1.0)  # every raw output far from 0
        a, b = torch.randn(5, 16), torch.randn(5, 16)
        out = decoder(a, b)
    assert out.shape == (5, NUM_SETTINGS)
    assert (out[:, PRESENCE] == 0).all() and (out[:, VALUES] != 0).all()
    with pytest.raises(ValueError, match=r"one shape, got \(5, 16\) and \(4, 16\)"):
        decoder(a, b[:4])


# ----------------------------------------------------------------------------- losses


def hard_targets(batch: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    target = torch.randn(batch, NUM_SETTINGS, generator=generator)
    target[:, PRESENCE] = (torch.rand(batch, len(PRESENCE), generator=generator) > 0.5).float()
    return target, torch.ones(batch, NUM_SETTINGS)


def test_settings_loss_of_a_known_case():
    target = torch.zeros(2, NUM_SETTINGS)
    target[:, VALUES] = 1.0
    target[:, PRESENCE] = 1.0
    # values off by one: MSE 1; presence logits 0 against target 1: BCE log 2
    assert settings_loss(torch.zeros(2, NUM_SETTINGS), target, torch.ones(2, NUM_SETTINGS)).item() == \
        pytest.approx(1.0 + math.log(2.0), rel=1e-6)


def test_settings_loss_is_zero_for_a_perfect_prediction():
    target, mask = hard_targets()
    perfect = target.clone()
    perfect[:, PRESENCE] = 30.0 * (2 * target[:, PRESENCE] - 1)  # confident logits on the right side
    assert settings_loss(perfect, target, mask).item() < 1e-6
    assert settings_loss(perfect + 0.1, target, mask).item() > 1e-3


def test_soft_presence_targets_are_fitted_by_their_probability():
    # A share of tracks (0.25) is the target probability: the loss is minimal at logit(0.25).
    target = torch.zeros(1, NUM_SETTINGS)
    target[:, PRESENCE] = 0.25
    mask = torch.zeros(1, NUM_SETTINGS)
    mask[:, PRESENCE] = 1.0
    logits = torch.zeros(1, NUM_SETTINGS)
    logits[:, PRESENCE] = math.log(0.25 / 0.75)
    logits.requires_grad_(True)
    settings_loss(logits, target, mask).backward()
    assert logits.grad.abs().max().item() < 1e-7


def test_settings_loss_ignores_undefined_entries():
    target, mask = hard_targets()
    mask[0, VALUES[:10]] = 0.0
    mask[1, PRESENCE[:3]] = 0.0
    outputs = torch.randn(target.shape, generator=torch.Generator().manual_seed(1))
    before = settings_loss(outputs, target, mask)
    changed = target.clone()
    changed[0, VALUES[:10]] += 100.0
    changed[1, PRESENCE[:3]] = 1.0 - changed[1, PRESENCE[:3]]
    assert settings_loss(outputs, changed, mask).item() == pytest.approx(before.item(), rel=1e-6)
    changed[0, VALUES[10]] += 1.0  # a defined entry does count
    assert settings_loss(outputs, changed, mask).item() != pytest.approx(before.item(), rel=1e-6)
    # no defined entry at all: 0, not NaN
    assert settings_loss(outputs, target, torch.zeros_like(mask)).item() == 0.0


def test_relative_loss_is_the_error_of_the_difference_on_values_defined_on_both_sides():
    target_a, mask_a = hard_targets()
    target_b = target_a + torch.randn(target_a.shape, generator=torch.Generator().manual_seed(2))
    mask_b = mask_a.clone()
    mask_b[:, VALUES[:5]] = 0.0
    difference = target_b - target_a
    assert relative_settings_loss(difference, target_a, target_b, mask_a, mask_b).item() < 1e-12
    wrong = difference.clone()
    wrong[:, PRESENCE] += 5.0  # presence columns are not a difference: ignored
    wrong[:, VALUES[:5]] += 5.0  # undefined on side b: ignored
    assert relative_settings_loss(wrong, target_a, target_b, mask_a, mask_b).item() < 1e-12
    wrong[:, VALUES[5:]] += 1.0
    assert relative_settings_loss(wrong, target_a, target_b, mask_a, mask_b).item() == pytest.approx(1.0, rel=1e-5)


# ----------------------------------------------------------------------------- learning


def test_a_few_hundred_steps_fit_a_decoder_to_settings_of_drawn_styles():
    torch.manual_seed(0)
    target, mask = style_targets(24)
    embeddings = F.normalize(torch.randn(24, 16), dim=-1)
    decoder = SettingsDecoder(16, 64)
    optimizer = torch.optim.Adam(decoder.parameters(), lr=3e-3)
    before = settings_loss(decoder(embeddings), target, mask).item()
    for _ in range(300):
        loss = settings_loss(decoder(embeddings), target, mask)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = settings_loss(decoder(embeddings), target, mask).item()
    # one track per stem class: presence targets are 0 or 1, so the loss can approach 0
    assert after < 0.05 * before, (before, after)


def test_weights_that_do_not_fit_the_config_are_refused_with_a_checkpoint_error():
    from mixrep.models.checkpoint import state_dict_hash
    from mixrep.models.encoder import EncoderConfig

    trained = MixStyleEncoder(EncoderConfig(num_features=8, n_mels=16, band_size=8, band_overlap=4, channels=(2, 4),
                                            embedding_dim=8, settings_version=SETTINGS_VERSION))
    state = {f"encoder.{k}": v for k, v in trained.state_dict().items()}
    checkpoint = {"state_dict": state, "mixrep": encoder_section(trained, {}, state)}
    # the config says "no decoder" while the weights hold one (hashes recomputed, as an editor could)
    checkpoint["mixrep"]["encoder_config"]["settings_version"] = 0
    checkpoint["mixrep"]["content_hash"] = state_dict_hash({k[8:]: v for k, v in state.items()})
    seal(checkpoint)
    with pytest.raises(CheckpointError, match="do not fit"):
        read_encoder(checkpoint, "edited.ckpt")
