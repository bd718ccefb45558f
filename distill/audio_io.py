"""Audio input: load any supported file as validated mono float32 at the working rate, scan folders.

Every problem with a file is an :class:`AudioFileError` that names the file and gives a reason a
person can act on; callers decide whether to skip or stop. Multi-channel files (up to
``MAX_CHANNELS``) are down-mixed to mono by averaging; more channels than that are refused,
because such files are ambisonic or multitrack stems whose plain average is not the sound.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from distill.storage import is_uri, read_location

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".mp3", ".aif", ".aiff", ".aifc")
MAX_CHANNELS = 8  # up to 7.1 is down-mixed; more is refused (see module docstring)
SILENCE_PEAK = 1e-5  # peak amplitude at or below which a file counts as digital silence (-100 dBFS)
CACHE_DIR_NAMES = frozenset({".distill", ".distill-cache", "__pycache__"})  # never scanned


class AudioFileError(ValueError):
    """A file that cannot be used as training audio; ``path`` and ``reason`` say which and why."""

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


@dataclass(frozen=True)
class AudioInfo:
    """What the file header says, before any decoding."""

    path: str
    sample_rate: int
    channels: int
    frames: int
    format: str

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate if self.sample_rate else 0.0


def probe(path: str | os.PathLike) -> AudioInfo:
    """Read the header of ``path`` (a local path or a storage URI) or raise :class:`AudioFileError`
    saying why it is not audio."""
    if is_uri(path):
        return _probe_remote(os.fspath(path))
    path = Path(path)
    if not path.exists():
        raise AudioFileError(path, "file does not exist")
    if not path.is_file():
        raise AudioFileError(path, "not a regular file")
    size = path.stat().st_size
    if size == 0:
        raise AudioFileError(path, "empty file (0 bytes)")
    with open(path, "rb") as handle:
        head = handle.read(12)
    return _read_header(path, str(path), head, size)


def _probe_remote(uri: str) -> AudioInfo:
    """:func:`probe` of an object: the header is read with a few ranged GETs, not the whole object."""
    import pyarrow.fs as pafs

    try:
        filesystem, inner = pafs.FileSystem.from_uri(uri)
        entry = filesystem.get_file_info(inner)
        if entry.type == pafs.FileType.NotFound:
            raise AudioFileError(uri, "file does not exist")
        if entry.type != pafs.FileType.File:
            raise AudioFileError(uri, "not a regular file")
        if entry.size == 0:
            raise AudioFileError(uri, "empty file (0 bytes)")
        with filesystem.open_input_file(inner) as handle:
            head = handle.read(12)
            handle.seek(0)
            return _read_header(uri, handle, head, int(entry.size))
    except AudioFileError:
        raise
    except (OSError, ValueError) as exc:  # the storage failed: a refused credential, a network error
        raise AudioFileError(uri, f"cannot read ({_clean(exc)})") from None


def _read_header(path: str | os.PathLike, source, head: bytes, size: int) -> AudioInfo:
    """The header of ``path`` (read from ``source``: its name, or an open seekable file), checked;
    ``head`` is its first 12 bytes and ``size`` its length."""
    try:
        info = sf.info(source)
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        raise AudioFileError(path, f"not a readable audio file ({_clean(exc)})") from None
    if info.channels < 1 or info.samplerate <= 0:
        raise AudioFileError(path, "header declares no channels or no sample rate")
    _check_container_size(path, head, size)
    return AudioInfo(str(path), int(info.samplerate), int(info.channels), int(info.frames), str(info.format))


@contextmanager
def readable(path: str | os.PathLike) -> Iterator[str | io.BytesIO]:
    """What soundfile should read for ``path``: the local path itself, or for a storage URI the
    object's bytes in memory.

    One GET of the whole object beats libsndfile's many small reads through a ranged-request file
    (a 2 s stereo segment is ~50 reads of 8 KB; each is a round trip to the bucket). Memory is one
    encoded file per task, less than its decoded samples, and no copy is left on a local disk.
    """
    if not is_uri(path):
        yield str(path)
        return
    try:
        data = read_location(path)
    except OSError as exc:
        raise AudioFileError(path, f"cannot read ({_clean(exc)})") from None
    yield io.BytesIO(data)


def load_audio(path: str | os.PathLike, sample_rate: int = 48000, min_samples: int = 2048,
               max_seconds: float | None = None) -> np.ndarray:
    """Decode ``path`` → mono float32 ``(T,)`` at ``sample_rate``, validated.

    ``min_samples`` is the shortest usable length *at the working rate* (one analysis window);
    ``max_seconds`` (optional) reads only the start of long files.
    """
    return _decode(path, probe(path), sample_rate, min_samples, max_seconds)


def load_audio_with_info(path: str | os.PathLike, sample_rate: int = 48000,
                         min_samples: int = 2048) -> tuple[np.ndarray, AudioInfo]:
    """:func:`load_audio` of the whole file, plus what its header says (rate, channels, format)."""
    info = probe(path)
    return _decode(path, info, sample_rate, min_samples, None), info


def _decode(path: str | os.PathLike, info: AudioInfo, sample_rate: int, min_samples: int,
            max_seconds: float | None) -> np.ndarray:
    """:func:`load_audio` after :func:`probe`: lets a scan reuse the header it already read."""
    if info.channels > MAX_CHANNELS:
        raise AudioFileError(path, f"{info.channels} channels; at most {MAX_CHANNELS} are supported "
                                   "(split multitrack or ambisonic files into stems first)")
    frames = -1 if max_seconds is None else int(round(max_seconds * info.sample_rate))
    try:
        with readable(path) as source:
            data, rate = sf.read(source, frames=frames, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise AudioFileError(path, f"corrupt or truncated audio ({_clean(exc)})") from None
    if data.shape[0] == 0:
        raise AudioFileError(path, "contains no audio samples (zero length)")
    if max_seconds is None and data.shape[0] < 0.99 * info.frames:
        raise AudioFileError(path, f"truncated: the header declares {info.duration:.2f} s but only "
                                   f"{data.shape[0] / info.sample_rate:.2f} s could be decoded")
    if not np.isfinite(data).all():
        raise AudioFileError(path, "contains NaN or infinite samples")
    mono = data.mean(axis=1, dtype=np.float64).astype(np.float32)
    if float(np.abs(mono).max()) <= SILENCE_PEAK:
        raise AudioFileError(path, "digital silence (peak below -100 dBFS)")
    if rate != sample_rate:
        mono = soxr.resample(mono, rate, sample_rate, quality="HQ").astype(np.float32)
    if mono.shape[0] < min_samples:
        raise AudioFileError(path, f"too short: {mono.shape[0] / sample_rate * 1000:.1f} ms; needs at least "
                                   f"{min_samples / sample_rate * 1000:.1f} ms (one analysis window)")
    return mono


SEGMENT_CONTEXT = 4096  # working-rate samples decoded on each side of a segment for the resampler
INEXACT_SEEK_FORMATS = frozenset({"OGG"})  # libsndfile format names whose seeking is not sample-exact


def load_segment(path: str | os.PathLike, start: int, length: int, sample_rate: int = 48000,
                 info: AudioInfo | None = None, num_samples: int | None = None) -> np.ndarray:
    """Samples ``[start, start + length)`` of the file at ``sample_rate``: mono float32 ``(length,)``.

    Equal (to ~3e-7, measured for WAV/FLAC/OGG/MP3 at 44.1 kHz) to slicing :func:`load_audio`'s
    output, but it reads only the part needed, so cutting a long recording into many pieces costs
    one decode in total, not one per piece. Positions outside the file are zeros. The read starts on
    a sample where both rates meet exactly (a multiple of ``rate / gcd``), so no fractional shift is
    introduced, with :data:`SEGMENT_CONTEXT` samples of context for the resampling filter. No
    validation beyond "readable": callers validate the whole file once (:func:`load_audio`), and
    should pass the length that gave (``num_samples``): compressed formats can decode to a few
    samples more or less than their header says.
    """
    info = info or probe(path)
    if length <= 0:
        return np.zeros(0, np.float32)
    requested = start
    lead = max(0, -start)  # samples before the file's start
    start, length_in_file = max(0, start), length - lead
    common = math.gcd(info.sample_rate, sample_rate)
    step_in, step_out = info.sample_rate // common, sample_rate // common
    block = max(0, start - SEGMENT_CONTEXT) // step_out
    out_start, src_start = block * step_out, block * step_in
    src_stop = math.ceil((start + length_in_file + SEGMENT_CONTEXT) * info.sample_rate / sample_rate)
    read_stop = min(info.frames, src_stop)
    mono = np.zeros(0, np.float32)
    if read_stop > src_start:
        # Ogg/Vorbis seeks by granule and missed by whole packets near the end of a file (measured),
        # so it is decoded from the start up to what is needed; the other formats seek exactly.
        skip = 0 if info.format not in INEXACT_SEEK_FORMATS else src_start
        try:
            with readable(path) as source:
                data, _ = sf.read(source, start=src_start - skip, stop=read_stop, dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError) as exc:
            raise AudioFileError(path, f"corrupt or truncated audio ({_clean(exc)})") from None
        mono = data[skip:].mean(axis=1, dtype=np.float64).astype(np.float32)
    mono = np.pad(mono, (0, src_stop - src_start - len(mono)))
    if info.sample_rate != sample_rate:
        mono = soxr.resample(mono, info.sample_rate, sample_rate, quality="HQ").astype(np.float32)
    out = np.pad(mono[start - out_start:start - out_start + length_in_file], (lead, 0))
    out = np.pad(out, (0, length - len(out)))
    # The whole file ends at num_samples (by default soxr's length for the declared frames,
    # round-half-up of frames · ratio); the filter's ringing into our zero padding must not show.
    if num_samples is None:
        num_samples = (2 * info.frames * sample_rate + info.sample_rate) // (2 * info.sample_rate)
    out[max(0, num_samples - requested):] = 0.0
    return out


def _check_container_size(path: str | os.PathLike, head: bytes, actual: int) -> None:
    """Refuse RIFF/WAVE and AIFF files (first bytes ``head``, ``actual`` bytes long) shorter than
    their own header says.

    libsndfile quietly shortens such files to the bytes that exist, which would silently drop the
    end of a recording (a copy interrupted half-way, say). Streaming writers that leave the size
    unknown (0 or 0xFFFFFFFF) are accepted.
    """
    if len(head) < 12:
        return
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        declared = int.from_bytes(head[4:8], "little")
    elif head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        declared = int.from_bytes(head[4:8], "big")
    else:
        return
    if declared not in (0, 0xFFFFFFFF) and declared + 8 > actual:
        raise AudioFileError(path, f"truncated: the header declares {declared + 8} bytes but the file has {actual}")


def _clean(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
    return text.replace("Error opening", "cannot open")[:200]


def find_audio_files(folder: str | os.PathLike) -> list[Path]:
    """All audio files under ``folder``, recursively, sorted; hidden entries and caches skipped.

    Extensions match case-insensitively. Raises ``NotADirectoryError``/``FileNotFoundError``.
    """
    root = Path(folder)
    if not root.exists():
        raise FileNotFoundError(f"{root}: folder does not exist")
    if not root.is_dir():
        raise NotADirectoryError(f"{root}: not a folder")
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d not in CACHE_DIR_NAMES)
        for name in filenames:
            if not name.startswith(".") and name.lower().endswith(AUDIO_EXTENSIONS):
                found.append(Path(dirpath) / name)
    return sorted(found)


@dataclass(frozen=True)
class ScanEntry:
    """One line of a folder scan."""

    path: str  # relative to the scanned folder
    status: str  # "ok" or "skipped"
    reason: str | None
    duration: float | None  # seconds, at the file's own rate
    sample_rate: int | None  # the file's own rate
    channels: int | None

    def to_dict(self) -> dict:
        return asdict(self)


def scan_folder(folder: str | os.PathLike, sample_rate: int = 48000, min_samples: int = 2048) -> list[ScanEntry]:
    """Validate every audio file under ``folder`` (a path or a storage URI; full decode), never
    raising for a bad file."""
    from distill.source_folder import SourceFolder  # it builds on this module

    source = SourceFolder.open(folder)
    entries = []
    for rel in source.list_audio():
        path = source.locate(rel)
        info = None
        try:
            info = probe(path)
            _decode(path, info, sample_rate, min_samples, max_seconds=None)
        except AudioFileError as err:
            entries.append(ScanEntry(rel, "skipped", err.reason, info and info.duration,
                                     info and info.sample_rate, info and info.channels))
        else:
            entries.append(ScanEntry(rel, "ok", None, info.duration, info.sample_rate, info.channels))
    return entries
