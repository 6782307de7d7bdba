"""Songs as note events: what the synthetic corpus and the soundfont corpus both play.

:func:`compose_song` draws one song from ``(seed, index)``: tempo, key, scale, chord progression,
swing and humanisation, an arrangement (sections where parts drop out) and the patterns of every
part, as :class:`Note` events in seconds. Renderers then give the parts a sound: harmonic
oscillators and filtered noise (:mod:`mixrep.corpora.synthetic`) or General-MIDI instruments of a
soundfont (:mod:`mixrep.corpora.soundfont`).

Parts (``Part.name``; ``role`` is what the arrangement switches on and off):

- ``kick``, ``snare``, ``closed_hat``, ``open_hat``: drum hits (GM drum keys 36, 38, 42, 46), role ``drums``
- ``bass``: chord roots (sometimes fifth or octave) on a per-song rhythm, role ``bass``
- ``chords``: a sustained pad, rhythmic stabs or an arpeggio (``Note.voice`` is the chord voice), role ``chords``
- ``lead``: a legato melody landing on chord tones on strong beats, role ``lead``

A song depends on ``(seed, index)`` only, never on the order of generation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

NOTE_NAMES: tuple[str, ...] = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")

SCALES: dict[str, tuple[int, ...]] = {
    "major": (0, 2, 4, 5, 7, 9, 11),
    "natural_minor": (0, 2, 3, 5, 7, 8, 10),
    "dorian": (0, 2, 3, 5, 7, 9, 10),
    "mixolydian": (0, 2, 4, 5, 7, 9, 10),
    "harmonic_minor": (0, 2, 3, 5, 7, 8, 11),
}
"""Seven-note scales as semitone offsets from the tonic (chords are stacked scale thirds)."""

PROGRESSIONS: tuple[tuple[int, ...], ...] = (
    (0, 4, 5, 3),  # I V vi IV
    (0, 5, 3, 4),  # I vi IV V
    (5, 3, 0, 4),  # vi IV I V
    (0, 3, 4, 4),  # I IV V V
    (0, 6, 5, 4),  # I vii vi V
    (0, 3, 0, 4),  # I IV I V
)
"""Chord progressions as 0-based scale degrees, one chord per bar, repeated."""

STEPS_PER_BAR = 16  # 4/4 on a sixteenth-note grid

ROLES: tuple[str, ...] = ("drums", "bass", "chords", "lead")
"""What the arrangement switches on and off, in this order (``Score.active`` columns)."""

DRUM_KEYS: dict[str, int] = {"kick": 36, "snare": 38, "closed_hat": 42, "open_hat": 46}
"""General-MIDI percussion keys (channel 10) of the drum parts."""

DRUM_HIT_SECONDS = 0.2
"""Note length of a drum hit (GM drums sound their sample whatever the note-off)."""


@dataclass(frozen=True)
class Note:
    """One note: onset and length in seconds, MIDI pitch, velocity in (0, 1], chord voice (0 = lowest)."""

    onset_seconds: float
    duration_seconds: float
    pitch: int
    velocity: float
    voice: int = 0


@dataclass(frozen=True)
class Part:
    """The notes of one instrument of a song; ``details`` describe its pattern (JSON-ready)."""

    name: str
    role: str
    notes: tuple[Note, ...]
    details: dict = field(default_factory=dict, compare=False)

    @property
    def is_drum(self) -> bool:
        return self.role == "drums"


@dataclass(frozen=True)
class Score:
    """A composed song.

    Attributes:
        seconds: length of the song.
        key: tonic pitch class (0 = C).
        active: ``(sections, len(ROLES))`` bool, which roles play in each section.
        section_seconds: length of a section (the last one may be cut by the song's end).
    """

    seed: tuple[int, int]
    seconds: float
    tempo_bpm: float
    key: int
    scale: str
    progression: tuple[int, ...]
    swing: float
    section_seconds: float
    active: np.ndarray = field(compare=False)
    parts: tuple[Part, ...] = ()

    def part(self, name: str) -> Part:
        for part in self.parts:
            if part.name == name:
                return part
        raise KeyError(f"score has no part {name!r}; it has {[p.name for p in self.parts]}")

    def sections(self) -> list[dict]:
        """``[{start_seconds, end_seconds, active: [roles]}]`` for display and metadata."""
        return [
            {
                "start_seconds": round(s * self.section_seconds, 3),
                "end_seconds": round(min((s + 1) * self.section_seconds, self.seconds), 3),
                "active": [role for role, on in zip(ROLES, self.active[s]) if on],
            }
            for s in range(len(self.active))
            if s * self.section_seconds < self.seconds
        ]

    def metadata(self) -> dict:
        return {
            "seed": list(self.seed),
            "tempo_bpm": self.tempo_bpm,
            "key": NOTE_NAMES[self.key],
            "scale": self.scale,
            "progression_degrees": list(self.progression),
            "swing": round(self.swing, 3),
            "parts": {p.name: {"notes": len(p.notes), **p.details} for p in self.parts},
        }


@dataclass
class _Grid:
    """Timing of a song: tempo, swing and the sixteenth-note grid, in seconds."""

    tempo_bpm: float
    swing: float  # fraction of a step that odd sixteenths are delayed by
    humanize_seconds: float
    seconds: float
    section_bars: int
    active: np.ndarray  # (sections, roles) bool

    @property
    def step_seconds(self) -> float:
        return 60.0 / self.tempo_bpm / 4.0

    @property
    def bar_seconds(self) -> float:
        return self.step_seconds * STEPS_PER_BAR

    @property
    def num_bars(self) -> int:
        return math.ceil(self.seconds / self.bar_seconds)

    def onset(self, bar: int, step: float, rng: np.random.Generator) -> float:
        """Onset in seconds of ``step`` (sixteenths, may be fractional) of ``bar``, swung and humanised."""
        seconds = (bar * STEPS_PER_BAR + step) * self.step_seconds
        if float(step).is_integer() and int(step) % 2 == 1:
            seconds += self.swing * self.step_seconds
        return max(0.0, seconds + float(rng.normal(0.0, self.humanize_seconds)))

    def plays(self, role: str, bar: int) -> bool:
        """Whether ``role`` is active in the section containing ``bar``."""
        return bool(self.active[min(bar // self.section_bars, len(self.active) - 1), ROLES.index(role)])

    def span(self, steps: float) -> float:
        return steps * self.step_seconds


def _arrangement(rng: np.random.Generator, num_sections: int) -> np.ndarray:
    """Which roles play in each section: ``(sections, roles)`` bool.

    Every part drops out now and then, but one section has all four, every section has at least
    two, so every part sounds somewhere in the song.
    """
    active = rng.random((num_sections, len(ROLES))) < 0.75
    active[rng.integers(num_sections)] = True
    for row in active:
        while row.sum() < 2:
            row[rng.integers(len(ROLES))] = True
    return active


def _random_rhythm(rng: np.random.Generator, density: float, grid: int = 1) -> list[int]:
    """Onset steps of one bar on a grid of ``grid`` sixteenths; step 0 always plays."""
    return [s for s in range(0, STEPS_PER_BAR, grid) if s == 0 or rng.random() < density]


def chord_pitch_classes(key: int, scale: tuple[int, ...], degree: int) -> list[int]:
    """Pitch classes (0..11) of the triad on ``degree`` (root, third, fifth) of the scale."""
    return [(key + scale[(degree + k) % 7]) % 12 for k in (0, 2, 4)]


def voice_near(pitch_class: int, centre_midi: int) -> int:
    """MIDI note of ``pitch_class`` in the octave starting at ``centre_midi``."""
    return centre_midi + (pitch_class - centre_midi) % 12


def _part(name: str, role: str, notes: list[Note], seconds: float, **details) -> Part:
    kept = sorted((n for n in notes if n.onset_seconds < seconds and n.duration_seconds > 0),
                  key=lambda n: (n.onset_seconds, n.voice))
    return Part(name, role, tuple(kept), details)


def _compose_drums(grid: _Grid, rng: np.random.Generator) -> list[Part]:
    kick_steps = [(0, 8), (0, 10), (0, 6, 8), (0, 7, 10), (0, 4, 8, 12), (0, 3, 8, 11)][rng.integers(6)]
    snare_steps = [(4, 12), (4, 12), (8,), (4, 12, 15)][rng.integers(4)]
    hat_grid = [2, 1, 2][rng.integers(3)]
    hat_offbeat = hat_grid == 2 and rng.random() < 0.3
    open_hat_step = int(rng.choice([14, 6, -1]))
    fill_probability = rng.uniform(0.0, 0.6)
    hits: dict[str, list[Note]] = {name: [] for name in DRUM_KEYS}

    def hit(name: str, bar: int, step: float, velocity: float) -> None:
        hits[name].append(Note(grid.onset(bar, step, rng), DRUM_HIT_SECONDS, DRUM_KEYS[name], float(velocity)))

    for bar in range(grid.num_bars):
        if not grid.plays("drums", bar):
            continue
        last_in_section = (bar + 1) % grid.section_bars == 0
        for s in kick_steps:
            hit("kick", bar, s, rng.uniform(0.85, 1.0))
        for s in snare_steps:
            hit("snare", bar, s, rng.uniform(0.8, 1.0))
        if last_in_section and rng.random() < fill_probability:
            for s in (13, 14, 15):
                hit("snare", bar, s, rng.uniform(0.4, 0.8))
        for s in range(1 if hat_offbeat else 0, STEPS_PER_BAR, hat_grid * (2 if hat_offbeat else 1)):
            if s == open_hat_step:
                hit("open_hat", bar, s, rng.uniform(0.5, 0.7))
            else:
                hit("closed_hat", bar, s, (1.0 if s % 4 == 0 else 0.6) * rng.uniform(0.3, 0.6))
    patterns = {"kick": {"steps": list(kick_steps)}, "snare": {"steps": list(snare_steps)},
                "closed_hat": {"grid_steps": hat_grid}, "open_hat": {"step": open_hat_step}}
    return [_part(name, "drums", hits[name], grid.seconds, **patterns[name]) for name in DRUM_KEYS]


def _compose_bass(grid: _Grid, rng: np.random.Generator, roots: list[int]) -> Part:
    rhythm = _random_rhythm(rng, rng.uniform(0.15, 0.45), grid=int(rng.choice([1, 2, 2])))
    legato = rng.uniform(0.5, 0.95)
    intervals = rng.choice([0, 0, 0, 7, 12], size=len(rhythm))
    notes = []
    for bar in range(grid.num_bars):
        if not grid.plays("bass", bar):
            continue
        root_midi = voice_near(roots[bar % len(roots)], 28)  # E1..D#2
        bounds = rhythm + [STEPS_PER_BAR]
        for j, step in enumerate(rhythm):
            notes.append(Note(grid.onset(bar, step, rng), grid.span((bounds[j + 1] - step) * legato),
                              int(root_midi + intervals[j]), float(rng.uniform(0.75, 1.0))))
    return _part("bass", "bass", notes, grid.seconds, rhythm_steps=rhythm)


def _compose_chords(grid: _Grid, rng: np.random.Generator, chords: list[list[int]]) -> Part:
    mode = str(rng.choice(["pad", "stabs", "arpeggio"]))
    centre = int(rng.integers(53, 60))
    voicings = [sorted(voice_near(pc, centre) for pc in chord) for chord in chords]
    notes: list[Note] = []
    if mode == "arpeggio":
        grid_steps = int(rng.choice([1, 2]))
        order = str(rng.choice(["up", "down", "updown"]))
        for bar in range(grid.num_bars):
            if not grid.plays("chords", bar):
                continue
            tones = voicings[bar % len(voicings)] + [voicings[bar % len(voicings)][0] + 12]
            seq = {"up": tones, "down": tones[::-1], "updown": tones + tones[-2:0:-1]}[order]
            for j, step in enumerate(range(0, STEPS_PER_BAR, grid_steps)):
                notes.append(Note(grid.onset(bar, step, rng), grid.span(grid_steps * 0.8), int(seq[j % len(seq)]),
                                  float(rng.uniform(0.6, 1.0))))
        return _part("chords", "chords", notes, grid.seconds, mode=mode, arpeggio_order=order,
                     arpeggio_grid_steps=grid_steps)
    if mode == "pad":
        rhythm, gates = [0], [STEPS_PER_BAR * 0.97]
    else:
        rhythm = _random_rhythm(rng, rng.uniform(0.2, 0.4), grid=2)
        gates = [rng.uniform(0.5, 1.5)] * len(rhythm)
    for voice in range(3):
        for bar in range(grid.num_bars):
            if not grid.plays("chords", bar):
                continue
            pitch = voicings[bar % len(voicings)][voice]
            for step, gate in zip(rhythm, gates):
                notes.append(Note(grid.onset(bar, step, rng), grid.span(gate), int(pitch),
                                  float(rng.uniform(0.7, 0.9)), voice))
    return _part("chords", "chords", notes, grid.seconds, mode=mode, rhythm_steps=rhythm)


def _compose_lead(grid: _Grid, rng: np.random.Generator, key: int, scale: tuple[int, ...],
                  chords: list[list[int]]) -> Part:
    tonic = voice_near(key, 57)  # A3..G#4
    degree = int(rng.integers(0, 5))
    notes = []
    eighth = 2
    for bar in range(grid.num_bars):
        if not grid.plays("lead", bar):
            continue
        chord = chords[bar % len(chords)]
        step = 0
        while step < STEPS_PER_BAR:
            length = int(rng.choice([1, 2, 2, 3, 4])) * eighth
            if rng.random() < 0.2:  # rest
                step += length
                continue
            if step == 0:  # strong beat: land on a chord tone
                candidates = [d for d in range(-2, 10) if (key + scale[d % 7]) % 12 in chord]
                degree = min(candidates, key=lambda d: abs(d - degree))
            else:
                degree = int(np.clip(degree + rng.choice([-2, -1, -1, 0, 1, 1, 2]), -2, 9))
            midi = tonic + scale[degree % 7] + 12 * (degree // 7)
            notes.append(Note(grid.onset(bar, step, rng), grid.span(min(length, STEPS_PER_BAR - step) * 0.92),
                              int(midi), float(rng.uniform(0.7, 1.0))))
            step += length
    return _part("lead", "lead", notes, grid.seconds)


def compose_song(seed: int, index: int, seconds: float, tempo_bpm_range: tuple[float, float] = (80.0, 150.0)) -> Score:
    """Compose song ``index`` of the corpus with seed ``seed``.

    The generator is seeded with ``(seed, index)``; nothing else is read, so songs can be
    composed in any order or in parallel.

    Args:
        seed: corpus seed.
        index: song number.
        seconds: song length; notes starting after it are dropped.
        tempo_bpm_range: tempo drawn uniformly in it.
    """
    rng = np.random.default_rng([seed, index])
    tempo_bpm = round(float(rng.uniform(*tempo_bpm_range)), 1)
    key = int(rng.integers(12))
    scale_name = str(rng.choice(list(SCALES)))
    scale = SCALES[scale_name]
    progression = PROGRESSIONS[rng.integers(len(PROGRESSIONS))]
    chords = [chord_pitch_classes(key, scale, d) for d in progression]

    bar_seconds = 240.0 / tempo_bpm
    num_bars = math.ceil(seconds / bar_seconds)
    section_bars = 4 if num_bars >= 12 and rng.random() < 0.5 else 2
    grid = _Grid(
        tempo_bpm=tempo_bpm,
        swing=float(rng.choice([0.0, 0.0, rng.uniform(0.1, 0.33)])),
        humanize_seconds=float(rng.uniform(0.0, 0.006)),
        seconds=seconds,
        section_bars=section_bars,
        active=_arrangement(rng, math.ceil(num_bars / section_bars)),
    )
    parts = (*_compose_drums(grid, rng), _compose_bass(grid, rng, [c[0] for c in chords]),
             _compose_chords(grid, rng, chords), _compose_lead(grid, rng, key, scale, chords))
    return Score((seed, index), seconds, tempo_bpm, key, scale_name, tuple(progression), grid.swing,
                 section_bars * bar_seconds, grid.active, parts)
