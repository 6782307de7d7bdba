"""Balance matching: the stem buses' faders move the stems to the reference's balance."""

from __future__ import annotations

import pytest
import torch

from mixrep.console import MixingConsole, MusicalPrior, sample_parameters
from mixrep.constants import STEMS
from mixrep.data.transfer import ConsoleSpec, align_track_levels
from mixrep.transfer.balance import console_stems, level_db, match_balance

SR = 8000
SPEC = ConsoleSpec(SR, "ecg", "cgr", {"eq": {"bins": 64}, "reverb": {"ir_seconds": 0.3}})
NAMES = ["kick", "snare", "bass", "keys", "voice"]
CLASSES = ["drums", "drums", "bass", "other", "vocals"]


def song(seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(2 * SR) / SR
    tones = torch.stack([torch.sin(2 * torch.pi * f * t) * (1 + torch.sin(2 * torch.pi * r * t)) for f, r in
                         [(60, 2), (900, 4), (110, 1), (440, 3), (660, 5)]])
    noise = torch.randn(len(NAMES), 2, t.numel(), generator=g) * 0.05
    return align_track_levels(tones[:, None] + noise)


def console(seed: int) -> MixingConsole:
    graph = SPEC.graph(NAMES, CLASSES)
    processors = SPEC.processors()
    params = sample_parameters(graph, processors, MusicalPrior(group_gain_db=(-15.0, 10.0)),
                               torch.Generator().manual_seed(seed))
    return MixingConsole(graph, processors, params)


def relative_db(stems: torch.Tensor) -> torch.Tensor:
    return level_db(stems) - level_db(stems.sum(0))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matched_stems_sit_in_the_mix_as_the_reference_stems(seed):
    tracks = song(seed)
    with torch.no_grad():
        reference = console_stems(console(100 + seed), song(50 + seed), CLASSES)  # another song, another mix
        ours = console(seed)
        before = relative_db(console_stems(ours, tracks, CLASSES)) - relative_db(reference)
        moved = match_balance(ours, tracks, CLASSES, reference * 3.0)  # the reference's own level is irrelevant
        after = relative_db(console_stems(ours, tracks, CLASSES)) - relative_db(reference)
    assert before.abs().max() > 3.0  # the test is not vacuous: the balance was off
    assert after.abs().max() < 0.5, after
    assert set(moved) == set(CLASSES) and any(abs(v) > 1.0 for v in moved.values())


def test_a_stem_silent_in_the_reference_keeps_its_fader_and_one_stem_alone_is_untouched():
    tracks = song(3)
    with torch.no_grad():
        reference = console_stems(console(7), song(4), CLASSES)
        reference[STEMS.index("other")] = 0.0
        ours = console(3)
        gains = ours.params["gain_pan"]["log_gain"].clone()
        moved = match_balance(ours, tracks, CLASSES, reference)
        assert "other" not in moved
        fader = [ours.graph.node_names[v] for v in ours.graph.nodes_of_type("gain_pan")]
        other = next(i for i, name in enumerate(fader) if "other" in name)
        torch.testing.assert_close(ours.params["gain_pan"]["log_gain"][other], gains[other])

        solo = MixingConsole(SPEC.graph(["bass"], ["bass"]), SPEC.processors())
        before = solo.params["gain_pan"]["log_gain"].clone()
        match_balance(solo, tracks[2:3], ["bass"], reference)
        torch.testing.assert_close(solo.params["gain_pan"]["log_gain"], before)


def test_a_console_without_bus_faders_is_refused():
    graph = ConsoleSpec(SR, "eg", "c", {"eq": {"bins": 64}}).graph(NAMES, CLASSES)
    bare = MixingConsole(graph, ConsoleSpec(SR, "eg", "c", {"eq": {"bins": 64}}).processors())
    with pytest.raises(ValueError, match="no fader on the drums"):
        match_balance(bare, song(0), CLASSES, torch.ones(4, 2, 100))
