"""Audio export: rendered takes → WAV / FLAC / OGG Vorbis / MP3 files, atomically, with tags.

Tags (title, artist, album, comment; ``software = "distill <version>"``) use libsndfile's string API
and were checked by reading them back (soundfile 0.14, libsndfile 1.2.2): WAV keeps them in its RIFF
``LIST/INFO`` chunk, FLAC and OGG as Vorbis comments (libsndfile appends `` (libsndfile-1.2.2)`` to
``software`` on reading), MP3 as ID3. In MP3, ``software`` (ID3 ``TSSE``) is LAME's own, so ours is
dropped there, and text is folded to ASCII ("Take — été" → "Take - ete", other characters → "?"):
LAME writes ID3v1 (no encoding) when every tag fits in 30 characters, else ID3v2 frames labelled
ISO-8859-1 that hold the UTF-8 bytes given, so any non-ASCII character would read back garbled.

Files are encoded under a temporary name in their destination folder and then renamed onto the
final name: a reader never sees half a file, and a failure leaves nothing behind
(:func:`write_takes` extends that to several takes at once).
"""

from __future__ import annotations

import io
import json
import os
import unicodedata
import uuid
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from distill import __version__

FORMATS = ("wav", "flac", "ogg", "mp3")
SAMPLE_RATES = (44100, 48000, 96000)
BIT_DEPTHS = {"wav": ("16", "24", "32f"), "flac": ("16", "24"), "ogg": (), "mp3": ()}  # lossy: no bit depth
DEFAULT_BIT_DEPTH = {"wav": "24", "flac": "24"}
FORMAT_RATES = {"mp3": (44100, 48000)}  # MPEG-1 Layer III stops at 48 kHz; libsndfile refuses to open 96 kHz
# Vorbis q6 (~190 kbit/s stereo) and LAME VBR V2 (~190 kbit/s): both near-transparent defaults.
DEFAULT_QUALITY = {"ogg": 6.0, "mp3": 8.0}
MAX_CHANNELS = {"flac": 8, "mp3": 2}  # more is refused by libsndfile (measured); WAV/OGG take many
TAGS = ("title", "artist", "album", "comment")
CEILING = 10 ** (-1 / 20)  # -1 dBFS peak ceiling (see render)
DITHER_SEED = 0x5EED  # fixed: the same take always dithers to the same bytes
TEMP_PREFIX = ".tmp-"

_SF_FORMAT = {"wav": "WAV", "flac": "FLAC", "ogg": "OGG", "mp3": "MP3"}
_SF_SUBTYPE = {"16": "PCM_16", "24": "PCM_24", "32f": "FLOAT", "ogg": "VORBIS", "mp3": "MPEG_LAYER_III"}
_INT16_SCALE = 32768  # libsndfile reads PCM_16 as k / 32768
_DASHES_AND_QUOTES = str.maketrans("\u2013\u2014\u2018\u2019\u201c\u201d", "--''\"\"")
_MP3_MAX_LEVEL = 0.99  # LAME's VBR quality must be < 10: libsndfile refuses compression_level 1.0 for MP3


class ExportError(ValueError):
    """A refused export; ``subject`` is the option field or file path at fault, ``reason`` says why."""

    def __init__(self, subject: str | os.PathLike, reason: str):
        self.subject = str(subject)
        self.reason = reason
        super().__init__(f"{self.subject}: {reason}")


@dataclass(frozen=True)
class ExportOptions:
    """How to write a take. ``bit_depth``/``quality`` ``None`` = the format's default."""

    format: str = "wav"
    sample_rate: int = 48000
    bit_depth: str | None = None  # "16" | "24" | "32f" (WAV, FLAC); none for OGG/MP3
    quality: float | None = None  # 0 (smallest) … 10 (best): OGG Vorbis quality, MP3 VBR quality
    title: str | None = None
    artist: str | None = None
    album: str | None = None
    comment: str | None = None

    def validate(self) -> None:
        """Raise :class:`ExportError` naming the field for an unknown value or unsupported combination."""
        if self.format not in FORMATS:
            raise ExportError("format", f"unknown format {self.format!r}; use one of {', '.join(FORMATS)}")
        rates = FORMAT_RATES.get(self.format, SAMPLE_RATES)
        if self.sample_rate not in rates:
            raise ExportError("sample_rate", f"{self.format} supports {', '.join(map(str, rates))} Hz "
                                             f"(got {self.sample_rate!r})")
        depths = BIT_DEPTHS[self.format]
        if self.bit_depth is not None and not depths:
            raise ExportError("bit_depth", f"{self.format} is lossy and takes no bit depth (got {self.bit_depth!r})")
        if self.bit_depth is not None and self.bit_depth not in depths:
            raise ExportError("bit_depth", f"{self.format} supports {', '.join(depths)} (got {self.bit_depth!r})")
        if self.quality is not None:
            if self.format not in DEFAULT_QUALITY:
                raise ExportError("quality", f"{self.format} is lossless and takes no quality; only ogg, mp3 do")
            if isinstance(self.quality, bool) or not isinstance(self.quality, (int, float)) \
                    or not 0 <= self.quality <= 10:
                raise ExportError("quality", f"must be a number from 0 to 10 (got {self.quality!r})")
        for name in TAGS:
            if not isinstance(getattr(self, name), (str, type(None))):
                raise ExportError(name, f"must be text (got {type(getattr(self, name)).__name__})")

    @property
    def resolved_bit_depth(self) -> str | None:
        return self.bit_depth or DEFAULT_BIT_DEPTH.get(self.format)


def default_extension(format: str) -> str:
    """File extension with the dot (``".wav"``) for one of :data:`FORMATS`."""
    ExportOptions(format).validate()
    return f".{format}"


def soundfile_subtype(options: ExportOptions) -> str:
    """soundfile's subtype name: PCM_16, PCM_24, FLOAT, VORBIS or MPEG_LAYER_III."""
    options.validate()
    return _SF_SUBTYPE[options.resolved_bit_depth or options.format]


@dataclass(frozen=True)
class ExportedFile:
    """One written file (``frames`` at ``sample_rate``) and its sidecar JSON path, if any."""

    path: str
    format: str
    sample_rate: int
    bit_depth: str | None
    channels: int
    frames: int
    sidecar: str | None = None

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate

    def to_json(self) -> dict:
        return {**asdict(self), "duration": self.duration}


@dataclass(frozen=True, eq=False)
class Take:
    """One file to write: ``audio`` (T,) or (T, C) float at ``source_rate`` Hz, and an optional sidecar."""

    path: str | os.PathLike
    audio: np.ndarray
    source_rate: int
    options: ExportOptions = field(default_factory=ExportOptions)
    sidecar: dict | None = None


def render(audio: np.ndarray, source_rate: int, options: ExportOptions) -> np.ndarray:
    """The samples that will be written: (T,) or (T, C) float at ``source_rate`` → float32 (T', C?) at
    ``options.sample_rate``, resampled (soxr HQ), peak ≤ :data:`CEILING`, and for 16-bit output
    TPDF-dithered onto the 16-bit grid (values k / 32768, written exactly).

    Loud takes are scaled down as a whole (never limited, never scaled up). The ceiling is -1 dBFS
    rather than 0 because Vorbis and MP3 decoders overshoot the input peak by a fraction of a dB
    (their quantisation noise adds to the waveform), and inter-sample peaks sit between samples:
    the usual 1 dB margin keeps every decoded or D/A-converted rendering from clipping.
    """
    options.validate()
    audio = np.asarray(audio)
    if audio.ndim not in (1, 2) or audio.shape[0] == 0 or (audio.ndim == 2 and audio.shape[1] == 0):
        raise ExportError("audio", f"expected (T,) or (T, C) samples with T, C ≥ 1, got shape {audio.shape}")
    if not np.issubdtype(audio.dtype, np.floating) or not np.isfinite(audio).all():
        raise ExportError("audio", "must be finite floating-point samples (no NaN or inf)")
    if isinstance(source_rate, bool) or not isinstance(source_rate, (int, np.integer)) or source_rate <= 0:
        raise ExportError("source_rate", f"must be a positive whole number of Hz (got {source_rate!r})")
    channels = 1 if audio.ndim == 1 else audio.shape[1]
    if channels > MAX_CHANNELS.get(options.format, channels):
        raise ExportError("channels", f"{options.format} holds at most {MAX_CHANNELS[options.format]} "
                                      f"channels (got {channels})")
    out = np.ascontiguousarray(audio, dtype=np.float32)
    if source_rate != options.sample_rate:
        out = soxr.resample(out, int(source_rate), options.sample_rate, quality="HQ").astype(np.float32)
    is_16 = options.resolved_bit_depth == "16"
    # For 16-bit, dither (< 1 LSB) and rounding (≤ ½ LSB) can add 1.5 LSB; keep that below the ceiling too.
    limit = CEILING - 1.5 / _INT16_SCALE if is_16 else CEILING
    peak = float(np.abs(out).max()) if out.size else 0.0
    if peak > limit:
        out = (out.astype(np.float64) * (limit / peak)).astype(np.float32)
    return _dither_16(out) if is_16 else out


def _dither_16(audio: np.ndarray, block: int = 1 << 20) -> np.ndarray:
    """Round onto the 16-bit grid with ±1 LSB triangular (TPDF) dither from a fixed seed, in blocks."""
    rng = np.random.default_rng(DITHER_SEED)
    out = np.empty_like(audio)
    for start in range(0, audio.shape[0], block):
        part = audio[start:start + block].astype(np.float64) * _INT16_SCALE
        noise = rng.random(part.shape) - rng.random(part.shape)  # sum of two uniforms: triangular on (-1, 1)
        out[start:start + block] = np.clip(np.round(part + noise), -_INT16_SCALE, _INT16_SCALE - 1) / _INT16_SCALE
    return out


def write_audio(path: str | os.PathLike, audio: np.ndarray, source_rate: int,
                options: ExportOptions | None = None, sidecar: dict | None = None) -> ExportedFile:
    """Render and write one take atomically (plus ``<path>.json`` when ``sidecar`` is given)."""
    return write_takes([Take(path, audio, source_rate, options or ExportOptions(), sidecar)])[0]


def write_takes(takes: Iterable[Take]) -> list[ExportedFile]:
    """Write several takes all-or-nothing: every take (and sidecar) is encoded to a temporary file in
    its destination folder first, and only when all succeeded are they renamed onto their names.

    ``takes`` may be a generator: each take is rendered and encoded as it arrives, so only one
    take's audio is in memory at a time (ten 10-minute takes would otherwise hold 1.2 GB).
    On any failure the temporary files, any final files already renamed and any folder created here
    are removed, and an :class:`ExportError` naming the field or the path is raised.
    """
    created: list[Path] = []  # folders made here, removed again on failure
    staged: list[tuple[Path, Path]] = []  # (temporary, final)
    done: list[Path] = []
    finals: set[Path] = set()
    results, current = [], None
    try:
        for take in takes:
            take.options.validate()
            final = Path(take.path)
            side = None if take.sidecar is None else final.with_name(final.name + ".json")
            for target in (final, side):
                if target is None:
                    continue
                if target.is_dir():
                    raise ExportError(target, "is a folder, not a file")
                if target.absolute() in finals:
                    raise ExportError("takes", "two takes would be written to the same file")
                finals.add(target.absolute())
            blob = None if side is None else _sidecar_bytes(take.sidecar, side)
            current = final
            missing = [p for p in (final.parent, *final.parent.parents) if not p.exists()]
            created.extend(missing)
            final.parent.mkdir(parents=True, exist_ok=True)
            rendered = render(take.audio, take.source_rate, take.options)
            staged.append((_temp_name(final), final))
            _encode(staged[-1][0], rendered, take.options)
            if side is not None:
                current = side
                staged.append((_temp_name(side), side))
                staged[-1][0].write_bytes(blob)
                _fsync(staged[-1][0])
            results.append(ExportedFile(str(final), take.options.format, take.options.sample_rate,
                                        take.options.resolved_bit_depth, 1 if rendered.ndim == 1 else
                                        rendered.shape[1], rendered.shape[0], None if side is None else str(side)))
        for temporary, current in staged:
            os.replace(temporary, current)
            done.append(current)
    except BaseException as exc:
        for path in [temporary for temporary, _ in staged] + done:
            path.unlink(missing_ok=True)
        for folder in sorted(created, key=lambda p: len(p.parts), reverse=True):
            try:
                folder.rmdir()
            except OSError:
                pass
        if isinstance(exc, (OSError, sf.LibsndfileError)):
            raise ExportError(current, f"cannot write ({_clean(exc)})") from None
        raise
    return results


def _sidecar_bytes(sidecar: dict, path: Path) -> bytes:
    def plain(value):  # numpy scalars / arrays from the generation code
        if isinstance(value, (np.generic, np.ndarray)):
            return value.tolist()
        raise TypeError(f"{type(value).__name__} is not JSON data")

    try:
        return (json.dumps(sidecar, indent=2, ensure_ascii=False, allow_nan=False, default=plain) + "\n").encode()
    except (TypeError, ValueError) as exc:
        raise ExportError(path, f"sidecar is not plain JSON data ({exc})") from None


def _temp_name(final: Path) -> Path:
    return final.with_name(f"{TEMP_PREFIX}{uuid.uuid4().hex}-{final.name}")


def encode_bytes(audio: np.ndarray, source_rate: int, options: ExportOptions) -> bytes:
    """One take as the bytes of a file: (T,) or (T, C) float at ``source_rate`` → rendered (:func:`render`) and
    encoded in memory, byte for byte what :func:`write_audio` writes to disk for the same input (OGG aside:
    each Ogg stream gets a random serial number, so two OGG encodings never agree byte for byte, their
    audio does). For the HTTP endpoint; :class:`ExportError` names the field at fault."""
    rendered = render(audio, source_rate, options)
    buffer = io.BytesIO()
    _encode_to(buffer, rendered, options)
    return buffer.getvalue()


def _encode(path: Path, audio: np.ndarray, options: ExportOptions) -> None:
    """Encode rendered samples to the new file ``path``, durably."""
    path.touch(exist_ok=False)  # a plain OSError ("Permission denied") where libsndfile only says "System error"
    _encode_to(path, audio, options)
    _fsync(path)


def _encode_to(target: Path | io.BytesIO, audio: np.ndarray, options: ExportOptions) -> None:
    """Encode rendered samples to a path or an in-memory file; tags go in before any audio (FLAC/OGG
    write them first). Encoding to memory gives the same bytes as to disk (libsndfile 1.2.2, checked)."""
    level = None
    if options.format in DEFAULT_QUALITY:  # libsndfile: compression 0 = best … 1 = smallest
        quality = DEFAULT_QUALITY[options.format] if options.quality is None else options.quality
        level = 1.0 - quality / 10.0
        level = min(level, _MP3_MAX_LEVEL) if options.format == "mp3" else level
    samples = audio
    if options.resolved_bit_depth == "16":  # already on the grid (render): write the integers as they are
        samples = np.round(audio.astype(np.float64) * _INT16_SCALE).astype(np.int16)
    channels = 1 if audio.ndim == 1 else audio.shape[1]
    with sf.SoundFile(target, "w", options.sample_rate, channels, soundfile_subtype(options),
                      format=_SF_FORMAT[options.format], compression_level=level,
                      bitrate_mode="VARIABLE" if options.format == "mp3" else None) as handle:
        for name in TAGS:
            if getattr(options, name):
                text = getattr(options, name)
                setattr(handle, name, mp3_text(text) if options.format == "mp3" else text)
        if options.format != "mp3":  # LAME fills MP3's own (see the module docstring)
            handle.software = f"distill {__version__}"
        handle.write(samples)


def mp3_text(text: str) -> str:
    """``text`` as it is stored in an MP3 tag: folded to ASCII (see the module docstring)."""
    folded = unicodedata.normalize("NFKD", text.translate(_DASHES_AND_QUOTES))
    return "".join(c for c in folded if not unicodedata.combining(c)).encode("ascii", "replace").decode()


def _fsync(path: Path) -> None:
    # Without it a power cut after the rename can leave an empty file under the final name.
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())


def _clean(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    text = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
    return text[:200]
