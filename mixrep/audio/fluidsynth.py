"""Render MIDI-like note events with a General-MIDI soundfont through FluidSynth (offline, float32).

:class:`SoundFontSynth` loads one ``.sf2`` / ``.sf3`` file into a FluidSynth instance (through the
``pyfluidsynth`` binding of ``libfluidsynth``) and renders event lists sample-accurately up to
FluidSynth's 64-sample block: it writes float audio up to each event, applies the event, and so on.
Reverb and chorus are off and every channel's reverb/chorus sends (CC 91/93) are zero, so a
rendering is dry: all ambience comes from the mixing style applied later.

Finding soundfonts: :func:`installed_soundfonts` lists the General-MIDI soundfonts Debian's
packages install (``fluid-soundfont-gm``: FluidR3_GM.sf2, ``musescore-general-soundfont``:
MuseScore_General.sf3, ``timgm6mb-soundfont``: TimGM6mb.sf2); :func:`default_soundfont` picks the
first one present (or ``$MIXREP_SOUNDFONT``).

Shape:
    :meth:`SoundFontSynth.render` returns ``(channels=2, samples)`` float32.
"""

from __future__ import annotations

import ctypes
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mixrep.audio.io import check_sample_rate
from mixrep.errors import DatasetError, MixrepError

log = logging.getLogger(__name__)

SYSTEM_SOUNDFONTS: tuple[str, ...] = (
    "/usr/share/sounds/sf2/FluidR3_GM.sf2",
    "/usr/share/sounds/sf3/MuseScore_General.sf3",
    "/usr/share/sounds/sf2/TimGM6mb.sf2",
    "/usr/share/sounds/sf2/default-GM.sf2",
    "/usr/share/sounds/sf3/default-GM.sf3",
)
"""Where Debian's GM soundfont packages put their files, in order of preference."""

SYSTEM_PACKAGES = ("libfluidsynth3", "fluid-soundfont-gm", "musescore-general-soundfont", "timgm6mb-soundfont")
"""The Debian packages that give FluidSynth and three different General-MIDI soundfonts."""

DRUM_CHANNEL = 9  # MIDI channel 10
DRUM_BANK = 128  # the SoundFont bank of percussion kits


def installed_soundfonts() -> list[Path]:
    """The system's GM soundfonts that exist, each file once (links resolved), preferred first."""
    found: dict[Path, Path] = {}
    for candidate in SYSTEM_SOUNDFONTS:
        path = Path(candidate)
        if path.is_file():
            found.setdefault(path.resolve(), path.resolve())
    return list(found.values())


def default_soundfont() -> Path | None:
    """``$MIXREP_SOUNDFONT`` if set, else the first of :func:`installed_soundfonts`, else None."""
    if os.environ.get("MIXREP_SOUNDFONT"):
        return Path(os.environ["MIXREP_SOUNDFONT"]).expanduser()
    installed = installed_soundfonts()
    return installed[0] if installed else None


def check_soundfont(path: str | os.PathLike) -> Path:
    """Check that ``path`` is a SoundFont 2/3 file (RIFF form type ``sfbk``) and return it.

    Raises:
        DatasetError: missing, not a file, or not a soundfont (naming the file and what to do).
    """
    path = Path(path).expanduser()
    if not path.exists():
        installed = ", ".join(str(p) for p in installed_soundfonts()) or "none"
        raise DatasetError(f"soundfont {path} does not exist; pass an .sf2/.sf3 file (installed here: {installed}; "
                           f"as root: apt-get install {' '.join(SYSTEM_PACKAGES[1:])})")
    if not path.is_file():
        raise DatasetError(f"soundfont {path} is not a file; pass the .sf2/.sf3 file itself")
    with open(path, "rb") as f:
        header = f.read(12)
    if len(header) < 12 or header[:4] != b"RIFF" or header[8:12] != b"sfbk":
        raise DatasetError(f"{path} is not a SoundFont (no RIFF 'sfbk' header); pass a General-MIDI .sf2 or .sf3 file")
    return path


def _load_fluidsynth():
    try:
        import fluidsynth
    except (ImportError, OSError) as e:
        raise MixrepError(
            f"FluidSynth is not available ({e}): install the library (as root: apt-get install libfluidsynth3) "
            "and the binding (pip install pyfluidsynth)"
        ) from e
    return fluidsynth


@dataclass(frozen=True)
class MidiEvent:
    """One channel event at ``seconds``.

    ``kind``: ``note_on`` (data1 = key, data2 = velocity 1..127), ``note_off`` (data1 = key),
    ``control`` (data1 = controller, data2 = value) or ``pitch_bend`` (data1 = -8192..8191).
    """

    seconds: float
    kind: str
    channel: int
    data1: int = 0
    data2: int = 0


_KIND_ORDER = {"note_off": 0, "control": 1, "pitch_bend": 2, "note_on": 3}  # at equal times: offs first


class SoundFontSynth:
    """One soundfont loaded in FluidSynth, rendering dry tracks offline.

    Args:
        path: ``.sf2`` or ``.sf3`` file.
        sample_rate: output rate in Hz.
        gain: FluidSynth master gain (0.2 is its default; levels are normalised downstream).
        polyphony: voices FluidSynth may play at once.

    Raises:
        DatasetError: not a soundfont, or FluidSynth cannot load it.
        MixrepError: FluidSynth itself is not installed.
    """

    def __init__(self, path: str | os.PathLike, sample_rate: int = 44_100, gain: float = 0.5,
                 polyphony: int = 256) -> None:
        self.path = check_soundfont(path)
        self.sample_rate = check_sample_rate(sample_rate)
        self.gain, self.polyphony = float(gain), int(polyphony)
        self._fluidsynth = _load_fluidsynth()
        # pyfluidsynth renders int16 only; FluidSynth's own float writer keeps the full resolution.
        self._write_float = self._fluidsynth.cfunc(
            "fluid_synth_write_float", ctypes.c_int, ("synth", ctypes.c_void_p, 1), ("len", ctypes.c_int, 1),
            ("lout", ctypes.c_void_p, 1), ("loff", ctypes.c_int, 1), ("lincr", ctypes.c_int, 1),
            ("rout", ctypes.c_void_p, 1), ("roff", ctypes.c_int, 1), ("rincr", ctypes.c_int, 1))
        # This instance answers preset queries and keeps the soundfont in FluidSynth's sample cache,
        # so the fresh instance each rendering gets loads it in milliseconds.
        self._synth, self.sfid = self._new_synth()
        self.name = self.path.stem

    def _new_synth(self):
        synth = self._fluidsynth.Synth(gain=self.gain, samplerate=float(self.sample_rate))
        for key, value in (("synth.reverb.active", 0), ("synth.chorus.active", 0), ("synth.polyphony", self.polyphony),
                           ("synth.midi-channels", 16)):
            synth.setting(key, value)
        sfid = synth.sfload(str(self.path))
        if sfid < 0:
            synth.delete()
            raise DatasetError(f"FluidSynth could not load the soundfont {self.path} (corrupt or unsupported); "
                               "try another .sf2/.sf3 file")
        return synth, sfid

    def close(self) -> None:
        if getattr(self, "_synth", None) is not None:
            self._synth.delete()
            self._synth = None

    def __enter__(self) -> SoundFontSynth:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def has_preset(self, bank: int, program: int) -> bool:
        """Whether the soundfont has a preset at ``(bank, program)`` (bank 128 = drum kits)."""
        return self._synth.sfpreset_name(self.sfid, bank, program) is not None

    def preset_name(self, bank: int, program: int) -> str | None:
        return self._synth.sfpreset_name(self.sfid, bank, program)

    def available(self, bank: int, programs: Iterable[int]) -> list[int]:
        """The programs of ``programs`` the soundfont has in ``bank``, in the given order."""
        return [p for p in programs if self.has_preset(bank, p)]

    def render(self, events: Sequence[MidiEvent], seconds: float,
               programs: dict[int, tuple[int, int]]) -> np.ndarray:
        """Render events from a fresh synth (deterministic: the same events give the same audio).

        Args:
            events: channel events, in any order (sorted here by time; at equal times note-offs
                come before note-ons). Events at or after ``seconds`` are ignored.
            seconds: length of the output.
            programs: ``{channel: (bank, program)}`` selected before the first event.

        Raises:
            DatasetError: a requested preset is not in the soundfont.

        Shape:
            returns ``(channels=2, samples=round(seconds * sample_rate))`` float32.
        """
        # A fresh FluidSynth per rendering: a reset synth still carries state (voice and filter
        # history) from earlier renderings, and reproducibility needs none.
        synth, sfid = self._new_synth()
        try:
            return self._render(synth, sfid, events, seconds, programs)
        finally:
            synth.delete()

    def _render(self, synth, sfid: int, events: Sequence[MidiEvent], seconds: float,
                programs: dict[int, tuple[int, int]]) -> np.ndarray:
        for channel, (bank, program) in programs.items():
            if not self.has_preset(bank, program):
                raise DatasetError(f"soundfont {self.path} has no preset bank {bank} program {program}")
            synth.program_select(channel, sfid, bank, program)
        for channel in range(16):
            for controller, value in ((91, 0), (93, 0), (10, 64)):  # no reverb/chorus sends, centred
                synth.cc(channel, controller, value)
        n = int(round(seconds * self.sample_rate))
        out = np.zeros((2, n), dtype=np.float32)
        written = 0
        for event in sorted(events, key=lambda e: (e.seconds, _KIND_ORDER.get(e.kind, 1))):
            at = int(round(event.seconds * self.sample_rate))
            if at >= n:
                break
            written = self._write(synth, out, written, at)
            if event.kind == "note_on":
                synth.noteon(event.channel, event.data1, int(np.clip(event.data2, 1, 127)))
            elif event.kind == "note_off":
                synth.noteoff(event.channel, event.data1)
            elif event.kind == "control":
                if event.data1 not in (10, 91, 93):  # pan and sends belong to the mix, not the performance
                    synth.cc(event.channel, event.data1, int(np.clip(event.data2, 0, 127)))
            elif event.kind == "pitch_bend":
                synth.pitch_bend(event.channel, int(np.clip(event.data1, -8192, 8191)))
            else:
                raise ValueError(f"unknown MIDI event kind {event.kind!r}")
        self._write(synth, out, written, n)
        return out

    def _write(self, synth, out: np.ndarray, start: int, stop: int) -> int:
        if stop > start:
            left, right = out[0, start:stop], out[1, start:stop]
            self._write_float(synth.synth, stop - start, left.ctypes.data, 0, 1, right.ctypes.data, 0, 1)
        return max(start, stop)
