"""Settings recovery: the scores mean what they say, and the evaluation runs end to end on a tiny checkpoint."""

from __future__ import annotations

import numpy as np
import pytest

from mixrep.evaluation.settings import (
    READERS,
    SettingsItems,
    entry_scores,
    evaluate_settings,
    format_settings_recovery,
    group_scores,
    relative_pairs,
)
from mixrep.styles.mix_style import MixStyleConfig, sample_mix_style
from mixrep.styles.settings_vector import NUM_SETTINGS, settings_vector


def drawn_targets(count: int) -> tuple[np.ndarray, np.ndarray]:
    names = ("kick", "bass", "piano", "lead")
    stems = ("drums", "bass", "other", "vocals")
    rng = np.random.default_rng(0)
    vectors = [settings_vector(sample_mix_style(MixStyleConfig(), rng, names=(*names, *stems)), names, stems)
               for _ in range(count)]
    return np.stack([v for v, _ in vectors]), np.stack([m for _, m in vectors])


def test_a_perfect_reader_scores_r2_1_and_auroc_1_and_the_mean_scores_about_0():
    targets, masks = drawn_targets(120)
    perfect = group_scores(entry_scores(targets, targets, masks))
    assert all(s.get("r2", 1.0) == pytest.approx(1.0) and s.get("auroc", 1.0) == pytest.approx(1.0)
               for s in perfect.values())
    means = (targets * masks).sum(0) / np.maximum(masks.sum(0), 1)
    mean = group_scores(entry_scores(np.tile(means, (len(targets), 1)), targets, masks))
    assert all(abs(s["r2"]) < 0.05 for s in mean.values() if "r2" in s)
    assert all(s["auroc"] == pytest.approx(0.5) for s in mean.values() if "auroc" in s)


def test_undefined_entries_do_not_count():
    targets, masks = drawn_targets(60)
    predictions = targets.copy()
    predictions[masks == 0] = 1e6  # wildly wrong where the truth is undefined
    assert entry_scores(predictions, targets, masks) == pytest.approx(entry_scores(targets, targets, masks))


def test_pairs_are_two_styles_of_one_song_or_of_two_songs():
    songs, styles = np.repeat(np.arange(3), 4), np.tile(np.arange(4), 3)
    items = SettingsItems(*(np.zeros((12, 1)),) * 4, np.zeros((12, NUM_SETTINGS)), np.zeros((12, NUM_SETTINGS)),
                          songs, styles)
    a, b, same = relative_pairs(items)
    assert len(a) == 24 and same.sum() == 12
    assert (styles[a] != styles[b]).all()
    assert ((songs[a] == songs[b]) == same).all()


@pytest.mark.slow
def test_evaluate_settings_scores_every_reader_on_a_tiny_decoder_checkpoint(tiny_decoder_checkpoint):
    results = evaluate_settings(tiny_decoder_checkpoint, domains=["synth"], num_songs=4, num_styles=6,
                                probe_songs=4, probe_styles=8)
    (result,) = results
    assert result.items == 24 and set(result.groups) == set(READERS)
    assert {"relative decoder", "absolute difference"} <= set(result.relative["same song"])
    assert "R^2 per settings group" in format_settings_recovery(results)
