"""A small, varied, deterministic example dataset synthesised by the project itself.

Ten sounds of a few seconds at 48 kHz covering what users bring: plucked strings (Karplus-Strong),
FM bells, filtered-noise textures, percussive hits, a detuned pad and a melody with vibrato.
Files are 24-bit WAV (one stereo, one FLAC) so loading, down-mixing and format handling are
exercised too. Identical arguments give identical samples on every machine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import soundfile as sf
from scipy import signal

SAMPLE_RATE = 48000  # Hz
PEAK_DBFS = -3.0  # every file is normalised to this peak


def _time(seconds: float) -> np.ndarray:
    return np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE


def _pluck(rng: np.random.Generator, freq: float, seconds: float = 3.0, damping: float = 0.996) -> np.ndarray:
    """Karplus-Strong: a noise burst circulating in a delay line with a lowpass averaging filter."""
    delay = int(round(SAMPLE_RATE / freq))
    excitation = np.zeros(int(seconds * SAMPLE_RATE))
    excitation[:delay] = rng.uniform(-1, 1, delay)
    denom = np.zeros(delay + 2)
    denom[0], denom[delay], denom[delay + 1] = 1.0, -0.5 * damping, -0.5 * damping
    return signal.lfilter([1.0], denom, excitation)


def _fm_bell(rng: np.random.Generator, freq: float, seconds: float = 3.5, ratio: float = 1.4) -> np.ndarray:
    """Chowning FM bell: inharmonic carrier/modulator ratio, index and amplitude decaying together."""
    t = _time(seconds)
    envelope = np.exp(-t * 1.6)
    index = 6.0 * envelope
    phase0 = rng.uniform(0, 2 * np.pi)
    return envelope * np.sin(2 * np.pi * freq * t + index * np.sin(2 * np.pi * freq * ratio * t) + phase0)


def _wind(rng: np.random.Generator, seconds: float = 4.0) -> np.ndarray:
    """White noise through a resonant bandpass whose centre drifts slowly (block-wise filtering)."""
    noise = rng.standard_normal(int(seconds * SAMPLE_RATE))
    out = np.zeros_like(noise)
    block = 1024
    state = None
    for start in range(0, noise.size, block):
        centre = 600 + 450 * np.sin(2 * np.pi * 0.25 * start / SAMPLE_RATE)
        sos = signal.butter(2, [centre / 1.3, centre * 1.3], btype="bandpass", fs=SAMPLE_RATE, output="sos")
        if state is None:
            state = np.zeros((sos.shape[0], 2))
        out[start:start + block], state = signal.sosfilt(sos, noise[start:start + block], zi=state)
    swell = 0.6 + 0.4 * np.sin(2 * np.pi * 0.4 * _time(seconds))
    return out * swell


def _rain(rng: np.random.Generator, seconds: float = 4.0) -> np.ndarray:
    """Sparse decaying droplets (high-passed clicks) over a soft highpassed noise bed."""
    n = int(seconds * SAMPLE_RATE)
    drops = np.zeros(n)
    positions = rng.integers(0, n - 2000, 140)
    drops[positions] = rng.uniform(0.2, 1.0, positions.size) * rng.choice([-1, 1], positions.size)
    drop_shape = np.exp(-np.arange(400) / 60.0) * np.sin(2 * np.pi * 3000 * np.arange(400) / SAMPLE_RATE)
    bed = signal.sosfilt(signal.butter(4, 2000, btype="highpass", fs=SAMPLE_RATE, output="sos"),
                         rng.standard_normal(n)) * 0.05
    return np.convolve(drops, drop_shape)[:n] + bed


def _kick(rng: np.random.Generator, seconds: float = 2.0) -> np.ndarray:
    """Two kick drums: a sine whose pitch falls from 150 to 45 Hz, with a short click."""
    t = _time(seconds)
    out = np.zeros_like(t)
    for onset in (0.05, 1.05):
        local = np.clip(t - onset, 0, None)
        freq = 45 + 105 * np.exp(-local * 30)
        phase = 2 * np.pi * np.cumsum(freq) / SAMPLE_RATE
        hit = np.sin(phase) * np.exp(-local * 6) * (t >= onset)
        click = rng.standard_normal(t.size) * np.exp(-local * 400) * (t >= onset) * 0.3
        out += hit + click
    return out


def _snare(rng: np.random.Generator, seconds: float = 2.0) -> np.ndarray:
    """Three snare hits: a 190 Hz body plus a band-passed noise burst, each decaying fast."""
    t = _time(seconds)
    out = np.zeros_like(t)
    noise = signal.sosfilt(signal.butter(2, [1500, 9000], btype="bandpass", fs=SAMPLE_RATE, output="sos"),
                           rng.standard_normal(t.size))
    for onset in (0.1, 0.7, 1.3):
        local = np.clip(t - onset, 0, None)
        gate = t >= onset
        out += gate * (np.sin(2 * np.pi * 190 * local) * np.exp(-local * 25) + noise * np.exp(-local * 18))
    return out


def _pad(rng: np.random.Generator, seconds: float = 4.0) -> np.ndarray:
    """A minor chord of detuned sawtooth pairs through a slowly opening lowpass."""
    t = _time(seconds)
    out = np.zeros_like(t)
    for freq in (220.0, 261.63, 329.63):
        for detune in (-0.004, 0.004):
            out += signal.sawtooth(2 * np.pi * freq * (1 + detune) * t + rng.uniform(0, 2 * np.pi))
    sos = signal.butter(2, 1800, btype="lowpass", fs=SAMPLE_RATE, output="sos")
    attack = np.minimum(t / 0.6, 1.0) * np.minimum((seconds - t) / 0.5, 1.0)
    return signal.sosfilt(sos, out) * attack


def _melody(rng: np.random.Generator, seconds: float = 4.0) -> np.ndarray:
    """An additive-synthesis melody (six harmonics, 1/n² rolloff) with delayed vibrato."""
    notes = (392.0, 440.0, 493.88, 587.33, 493.88, 440.0, 392.0, 329.63)
    t = _time(seconds)
    note_len = seconds / len(notes)
    index = np.minimum((t / note_len).astype(int), len(notes) - 1)
    local = t - index * note_len
    vibrato = 1 + 0.006 * np.sin(2 * np.pi * 5.5 * t) * np.clip((local - 0.15) / 0.2, 0, 1)
    inst_freq = np.asarray(notes)[index] * vibrato
    phase = 2 * np.pi * np.cumsum(inst_freq) / SAMPLE_RATE
    envelope = np.minimum(local / 0.02, 1.0) * np.exp(-local * 1.5)
    tone = sum(np.sin(h * phase + rng.uniform(0, 2 * np.pi)) / h ** 2 for h in range(1, 7))
    return tone * envelope


# name -> (generator, channels, file extension)
_SOUNDS: dict[str, tuple[Callable[[np.random.Generator], np.ndarray], int, str]] = {
    "pluck_a2": (lambda r: _pluck(r, 110.0), 1, ".wav"),
    "pluck_e4": (lambda r: _pluck(r, 329.63, damping=0.993), 1, ".wav"),
    "bell_c5": (lambda r: _fm_bell(r, 523.25), 1, ".wav"),
    "bell_g3": (lambda r: _fm_bell(r, 196.0, ratio=2.76), 1, ".flac"),
    "wind": (_wind, 2, ".wav"),
    "rain": (_rain, 1, ".wav"),
    "kick": (_kick, 1, ".wav"),
    "snare": (_snare, 1, ".wav"),
    "pad_am": (_pad, 1, ".wav"),
    "melody": (_melody, 1, ".wav"),
}


def _normalise(audio: np.ndarray) -> np.ndarray:
    return audio / np.abs(audio).max() * 10 ** (PEAK_DBFS / 20)


def write_example_data(folder: str | Path, seed: int = 0) -> list[Path]:
    """Write the example dataset into ``folder`` (created if needed); returns its files. A file whose
    content is already there is left untouched (its mtime too, so a prepared cache of it stays fresh)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for number, (name, (make, channels, ext)) in enumerate(_SOUNDS.items()):
        rng = np.random.default_rng([seed, number])
        mono = _normalise(make(rng))
        if channels == 2:
            # A slightly delayed, quieter right channel: a real stereo image that down-mixes cleanly.
            right = np.concatenate([np.zeros(24), mono[:-24]]) * 0.8
            data = np.stack([mono, right], axis=1)
        else:
            data = mono
        path = folder / f"{name}{ext}"
        tmp = path.with_name(f".{path.name}.tmp")
        sf.write(str(tmp), data.astype(np.float32), SAMPLE_RATE, subtype="PCM_24",
                 format="FLAC" if ext == ".flac" else "WAV")
        if path.is_file() and path.read_bytes() == tmp.read_bytes():
            tmp.unlink()  # unchanged: keep the file's mtime, so a prepared cache of it stays fresh
        else:
            tmp.replace(path)
        written.append(path)
    return written
