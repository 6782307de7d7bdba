"""Balance matching: the faders move the stems to the reference's balance, in level and stereo."""

from __future__ import annotations

import pytest
import torch

from mixrep.console import MixingConsole, MusicalPrior, sample_parameters
from mixrep.console.batch import strip_of_nodes
from mixrep.console.functional import gain_pan_physical
from mixrep.console.spec import ConsoleSpec, align_track_levels, stem_groups
from mixrep.constants import STEMS
from mixrep.inference.balance import console_stems, level_db, match_balance, stereo_db

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


def fader_owners(mixer: MixingConsole) -> list[tuple[str, int]]:
    """``("track", k)`` or ``("group", g)`` of every gain/pan row."""
    owners = strip_of_nodes(mixer.graph)
    return [owners[v] for v in mixer.graph.nodes_of_type("gain_pan")]


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
    assert set(moved.level_db) == set(CLASSES) and any(abs(v) > 1.0 for v in moved.level_db.values())


def test_a_stem_silent_in_the_reference_keeps_its_faders_and_one_stem_alone_keeps_its_level():
    tracks = song(3)
    with torch.no_grad():
        reference = console_stems(console(7), song(4), CLASSES)
        reference[STEMS.index("other")] = 0.0
        ours = console(3)
        gains = ours.params["gain_pan"]["log_gain"].clone()
        moved = match_balance(ours, tracks, CLASSES, reference)
        assert all("other" not in part for part in (moved.level_db, moved.stereo_db))
        buses = list(stem_groups(NAMES, CLASSES))
        other = [i for i, (strip, k) in enumerate(fader_owners(ours))
                 if (CLASSES if strip == "track" else buses)[k] == "other"]
        assert len(other) == 2  # the keys track's fader and the other bus's
        torch.testing.assert_close(ours.params["gain_pan"]["log_gain"][other], gains[other])

        solo = MixingConsole(SPEC.graph(["bass"], ["bass"]), SPEC.processors())
        bus = next(i for i, owner in enumerate(fader_owners(solo)) if owner[0] == "group")
        before = solo.params["gain_pan"]["log_gain"][bus].clone()
        alone = match_balance(solo, tracks[2:3], ["bass"], reference)
        assert alone.level_db == {} and set(alone.stereo_db) == {"bass"}
        torch.testing.assert_close(solo.params["gain_pan"]["log_gain"][bus], before)


def test_a_console_without_bus_faders_is_refused():
    graph = ConsoleSpec(SR, "eg", "c", {"eq": {"bins": 64}}).graph(NAMES, CLASSES)
    bare = MixingConsole(graph, ConsoleSpec(SR, "eg", "c", {"eq": {"bins": 64}}).processors())
    with pytest.raises(ValueError, match="no fader on the drums"):
        match_balance(bare, song(0), CLASSES, torch.ones(4, 2, 100))


def test_the_pans_of_tracks_alone_in_their_stems_are_recovered():
    tracks = song(5)
    with torch.no_grad():
        truth = console(20)
        reference = console_stems(truth, tracks, CLASSES)  # the same tracks: the truth's pans are recoverable
        ours = console(20)
        faders = ours.params["gain_pan"]["log_gain"]
        solo = [i for i, (strip, k) in enumerate(fader_owners(ours))
                if strip == "track" and CLASSES[k] in ("bass", "other", "vocals")]  # tracks alone in their stems
        assert len(solo) == 3
        faders[solo] = faders[solo].flip(-1)  # mirror the pans of the tracks alone in their stems
        before = stereo_db(console_stems(ours, tracks, CLASSES)) - stereo_db(reference)
        moves = match_balance(ours, tracks, CLASSES, reference)
        after = stereo_db(console_stems(ours, tracks, CLASSES)) - stereo_db(reference)
        recovered = gain_pan_physical(ours.params["gain_pan"]["log_gain"][solo])
        true = gain_pan_physical(truth.params["gain_pan"]["log_gain"][solo])
    present = [STEMS.index(c) for c in ("bass", "other", "vocals")]
    assert before[present].abs().max() > 3.0  # not vacuous: the stems sat elsewhere
    assert after.abs().max() < 0.5, after
    torch.testing.assert_close(recovered["pan"], true["pan"], atol=0.03, rtol=0.0)
    assert set(moves.stereo_db) == set(CLASSES)
