"""Standard MIDI files (Lakh MIDI and the like) as parts to render: one per channel and program.

:func:`read_midi` parses a type 0 or 1 file with ``mido`` (tempo changes applied, times in
seconds) and splits it into :class:`MidiPart` s: every ``(channel, program)`` pair that plays notes
is a part (a note belongs to the program its channel had at its onset); channel 10 is the drum kit
(its program selects the kit). Performance controllers of the channel (modulation, expression,
sustain pedal, pitch bend...) go with each of its parts; pan and reverb/chorus sends are left to
the mix (:class:`~mixrep.audio.fluidsynth.SoundFontSynth` ignores them).

A part's events are on channel 0, or 9 for drums, ready for :meth:`SoundFontSynth.render`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mixrep.audio.fluidsynth import DRUM_CHANNEL, MidiEvent
from mixrep.errors import DatasetError

RELEASE_TAIL_SECONDS = 1.0
"""Rendered past the last note-off, so releases are not cut."""


@dataclass(frozen=True)
class MidiPart:
    """The notes of one ``(channel, program)`` of a file, with that channel's controllers.

    Attributes:
        channel: the file's channel (0-15; 9 is drums).
        program: GM program (0-127), or the drum kit for drums.
        events: on channel 0 (melodic) or 9 (drums).
        notes: number of notes.
    """

    channel: int
    program: int
    is_drum: bool
    events: tuple[MidiEvent, ...]
    notes: int


@dataclass(frozen=True)
class MidiSong:
    path: Path
    seconds: float
    parts: tuple[MidiPart, ...]


def read_midi(path: str | Path, max_seconds: float | None = None) -> MidiSong:
    """Parse a MIDI file into parts; notes starting at or after ``max_seconds`` are dropped.

    Returns:
        The parts (ordered by channel, then program) and the song length: the last note-off plus
        :data:`RELEASE_TAIL_SECONDS`, capped at ``max_seconds``.

    Raises:
        DatasetError: the file is missing, corrupt, of type 2, or has no notes (naming the file).
    """
    import mido

    path = Path(path)
    try:
        midi = mido.MidiFile(str(path))
        if midi.type == 2:
            raise DatasetError(f"{path} is a type 2 (asynchronous) MIDI file, which has no single timeline; "
                               "convert it to type 1")
        messages = list(midi)  # merged tracks, delta times in seconds (tempo map applied)
    except DatasetError:
        raise
    except Exception as e:  # mido raises OSError, EOFError, ValueError, KeyError, IndexError... on bad data
        raise DatasetError(f"cannot parse MIDI file {path}: {type(e).__name__}: {e}") from e
    limit = float("inf") if max_seconds is None else float(max_seconds)
    now = 0.0
    program = [0] * 16
    sounding: dict[tuple[int, int], list[tuple[float, int, int]]] = {}  # (channel, key) -> [(onset, program, velocity)]
    notes: dict[tuple[int, int], list[tuple[float, float, int, int]]] = {}  # (channel, program) -> notes
    controls: dict[int, list[MidiEvent]] = {}

    def close(channel: int, key: int, at: float) -> None:
        if sounding.get((channel, key)):
            onset, prog, velocity = sounding[(channel, key)].pop(0)
            notes.setdefault((channel, prog), []).append((onset, min(at, limit), key, velocity))

    for msg in messages:
        now += msg.time
        if msg.is_meta or not hasattr(msg, "channel"):
            continue
        ch = msg.channel
        if msg.type == "program_change":
            program[ch] = msg.program
        elif msg.type == "note_on" and msg.velocity > 0:
            if now < limit:
                sounding.setdefault((ch, msg.note), []).append((now, program[ch], msg.velocity))
        elif msg.type in ("note_off", "note_on"):
            close(ch, msg.note, now)
        elif msg.type == "control_change" and now < limit:
            controls.setdefault(ch, []).append(MidiEvent(now, "control", ch, msg.control, msg.value))
        elif msg.type == "pitchwheel" and now < limit:
            controls.setdefault(ch, []).append(MidiEvent(now, "pitch_bend", ch, msg.pitch))
    for (ch, key), pending in list(sounding.items()):
        while pending:
            close(ch, key, now)  # notes never released end with the file
    if not notes:
        raise DatasetError(f"MIDI file {path} has no notes{f' in its first {max_seconds:g} s' if max_seconds else ''}")
    parts = []
    for (ch, prog), found in sorted(notes.items()):
        target = DRUM_CHANNEL if ch == DRUM_CHANNEL else 0
        events = [MidiEvent(e.seconds, e.kind, target, e.data1, e.data2) for e in controls.get(ch, [])]
        for onset, end, key, velocity in found:
            events += [MidiEvent(onset, "note_on", target, key, velocity), MidiEvent(max(end, onset), "note_off", target, key)]
        parts.append(MidiPart(ch, prog, ch == DRUM_CHANNEL, tuple(sorted(events, key=lambda e: e.seconds)), len(found)))
    last_off = max(end for found in notes.values() for _, end, _, _ in found)
    return MidiSong(path, min(last_off + RELEASE_TAIL_SECONDS, limit), tuple(parts))
