"""Audio export: every format read back by soundfile, tags, resampling, peak safety, atomic writes."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import soundfile as sf

from distill import export
from distill.export import (
    BIT_DEPTHS,
    CEILING,
    FORMAT_RATES,
    FORMATS,
    SAMPLE_RATES,
    ExportError,
    ExportOptions,
    Take,
    default_extension,
    mp3_text,
    render,
    soundfile_subtype,
    write_audio,
    write_takes,
)

SOURCE_RATE = 48000
LSB16 = 1 / 32768
TAGS = {"title": "Take 1 — été", "artist": "distill", "album": "Sketches",
        "comment": "model=pads seed=7\nsliders: brightness=+3.0, Axis 2=-1.5"}
SUBTYPES = {"16": "PCM_16", "24": "PCM_24", "32f": "FLOAT", None: None}
LOSSY_SUBTYPES = {"ogg": "VORBIS", "mp3": "MPEG_LAYER_III"}
COMBOS = [(fmt, depth, rate) for fmt in FORMATS for depth in (BIT_DEPTHS[fmt] or (None,))
          for rate in FORMAT_RATES.get(fmt, SAMPLE_RATES)]


def signal(seconds=1.0, channels=1, peak=0.5, rate=SOURCE_RATE, seed=0):
    """A 440 Hz sine plus a little noise, (T,) or (T, C), scaled to ``peak``."""
    t = np.arange(int(seconds * rate)) / rate
    rng = np.random.default_rng(seed)
    columns = [np.sin(2 * np.pi * 440 * (c + 1) * t) + 0.1 * rng.standard_normal(t.size) for c in range(channels)]
    audio = np.stack(columns, axis=1) if channels > 1 else columns[0]
    return (audio * peak / np.abs(audio).max()).astype(np.float32)


def expected_frames(frames, rate):
    # soxr's output length: frames · ratio, rounded half up.
    return (2 * frames * rate + SOURCE_RATE) // (2 * SOURCE_RATE)


def folder_contents(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.mark.parametrize("fmt,depth,rate", COMBOS)
def test_every_format_depth_and_rate_reads_back(tmp_path, fmt, depth, rate):
    audio = signal(0.5)
    path = tmp_path / f"take{default_extension(fmt)}"
    options = ExportOptions(fmt, rate, depth, **TAGS)
    result = write_audio(path, audio, SOURCE_RATE, options, sidecar={"seed": np.int64(7), "sliders": [3.0, -1.5]})

    with sf.SoundFile(path) as handle:
        assert handle.samplerate == rate
        assert handle.subtype == (SUBTYPES[depth] or LOSSY_SUBTYPES[fmt]) == soundfile_subtype(options)
        assert handle.channels == 1
        # libsndfile 1.2.2 is gapless for the lossy formats too (Vorbis granule positions; LAME's
        # delay/padding header read by mpg123): measured 0 frames of encoder padding, so exact.
        assert handle.frames == expected_frames(audio.shape[0], rate) == result.frames
        expected = {name: mp3_text(text) for name, text in TAGS.items()} if fmt == "mp3" else TAGS
        assert {name: getattr(handle, name) for name in TAGS} == expected
        software = handle.software
    decoded, _ = sf.read(path, dtype="float32")
    assert decoded.shape == (result.frames,)
    if fmt == "mp3":
        assert software.startswith("LAME")  # ID3's TSSE is the encoder's own: ours is dropped, documented
    else:
        assert software.startswith("distill ")  # libsndfile appends " (libsndfile-1.2.2)"
    assert result.to_json() == {"path": str(path), "format": fmt, "sample_rate": rate, "channels": 1,
                                "bit_depth": depth or export.DEFAULT_BIT_DEPTH.get(fmt), "frames": result.frames,
                                "duration": pytest.approx(0.5, abs=1 / rate), "sidecar": str(path) + ".json"}
    assert json.loads((tmp_path / f"take{default_extension(fmt)}.json").read_text()) == {"seed": 7,
                                                                                        "sliders": [3.0, -1.5]}
    assert folder_contents(tmp_path) == sorted([path.name, path.name + ".json"])


@pytest.mark.parametrize("comment", ["short", "a comment longer than ID3v1's thirty characters"])
def test_mp3_tags_read_back_as_ascii_with_id3v1_and_id3v2(tmp_path, comment):
    # LAME writes ID3v1 when every tag fits in 30 characters, else ID3v2: both paths are exercised.
    options = ExportOptions("mp3", title="Take 1 — été", artist="Ærø", comment=comment)
    write_audio(tmp_path / "take.mp3", signal(0.2), SOURCE_RATE, options)
    with sf.SoundFile(tmp_path / "take.mp3") as handle:
        assert (handle.title, handle.artist, handle.comment) == ("Take 1 - ete", "?r?", comment)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("channels", [1, 2])
def test_mono_and_stereo(tmp_path, fmt, channels):
    audio = signal(1.0, channels=channels)
    path = tmp_path / f"take.{fmt}"
    result = write_audio(path, audio, SOURCE_RATE, ExportOptions(fmt))
    decoded, rate = sf.read(path, dtype="float32")
    assert result.channels == sf.info(path).channels == channels
    assert decoded.shape == audio.shape and rate == SOURCE_RATE
    # Channels stay apart and in order (the second one is at 880 Hz), also after lossy coding.
    tolerance = 1e-4 if fmt in ("wav", "flac") else 0.1
    assert np.sqrt(np.mean((decoded - audio) ** 2)) < tolerance


@pytest.mark.parametrize("rate", SAMPLE_RATES)
def test_resampled_sine_keeps_its_pitch_and_level(tmp_path, rate):
    t = np.arange(2 * SOURCE_RATE) / SOURCE_RATE
    sine = (0.5 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)
    write_audio(tmp_path / "sine.wav", sine, SOURCE_RATE, ExportOptions("wav", rate, "32f"))
    decoded, read_rate = sf.read(tmp_path / "sine.wav", dtype="float64")
    spectrum = np.abs(np.fft.rfft(decoded * np.hanning(decoded.size)))
    peak_hz = np.argmax(spectrum) * read_rate / decoded.size
    assert read_rate == rate and abs(peak_hz - 1000) <= read_rate / decoded.size
    middle = decoded[rate // 4:-rate // 4]  # away from the resampler's edges
    assert np.sqrt(2 * np.mean(middle ** 2)) == pytest.approx(0.5, rel=1e-3)


@pytest.mark.parametrize("fmt,depth", [("wav", "16"), ("wav", "24"), ("wav", "32f"), ("flac", "16"), ("flac", "24")])
def test_loud_input_is_scaled_under_the_ceiling(tmp_path, fmt, depth):
    loud = signal(1.0, channels=2, peak=1.5)
    write_audio(tmp_path / f"loud.{fmt}", loud, SOURCE_RATE, ExportOptions(fmt, 44100, depth))
    decoded, _ = sf.read(tmp_path / f"loud.{fmt}", dtype="float64")
    peak = np.abs(decoded).max()
    assert peak <= CEILING + LSB16
    assert peak >= CEILING - 3 * LSB16  # scaled *to* the ceiling, not further
    # The whole take is scaled by one factor: the channels keep their balance.
    before, after = (np.sqrt(np.mean(a.astype(np.float64) ** 2, axis=0)) for a in (loud, decoded))
    assert after[0] / after[1] == pytest.approx(before[0] / before[1], rel=1e-3)


@pytest.mark.parametrize("fmt", ["ogg", "mp3"])
def test_lossy_formats_do_not_clip_after_their_overshoot(tmp_path, fmt):
    write_audio(tmp_path / f"loud.{fmt}", signal(1.0, peak=1.5), SOURCE_RATE, ExportOptions(fmt))
    decoded, _ = sf.read(tmp_path / f"loud.{fmt}", dtype="float64")
    assert CEILING * 0.9 < np.abs(decoded).max() < 1.0  # measured overshoot: OGG ≈ +0.3 dB, MP3 ≈ +0.1 dB


def test_quiet_input_keeps_its_level():
    quiet = signal(1.0, peak=0.25)
    assert np.array_equal(render(quiet, SOURCE_RATE, ExportOptions("wav", 48000, "32f")), quiet)
    dithered = render(quiet, SOURCE_RATE, ExportOptions("wav", 48000, "16"))
    error = (dithered - quiet) / LSB16
    assert np.abs(error).max() <= 1.5  # ±1 LSB triangular dither + ½ LSB rounding, nothing more
    # TPDF dither before rounding: error variance ½·⅙ + 1/12 = ¼ LSB² (plain rounding would give 1/12).
    assert np.std(error) == pytest.approx(0.5, rel=0.05)
    assert np.array_equal(np.round(dithered / LSB16), dithered / LSB16)  # on the 16-bit grid


def test_same_input_gives_identical_bytes(tmp_path):
    audio = signal(1.0, channels=2)
    for name in ("a.wav", "b.wav"):
        write_audio(tmp_path / name, audio, SOURCE_RATE, ExportOptions("wav", 44100, "16", title="same"))
    assert (tmp_path / "a.wav").read_bytes() == (tmp_path / "b.wav").read_bytes()


@pytest.mark.parametrize("fmt", ["ogg", "mp3"])
def test_quality_setting_changes_the_size(tmp_path, fmt):
    audio = signal(2.0, channels=2)
    sizes = {}
    for quality in (2, 9):
        path = tmp_path / f"q{quality}.{fmt}"
        write_audio(path, audio, SOURCE_RATE, ExportOptions(fmt, quality=quality))
        sizes[quality] = path.stat().st_size
    assert sizes[2] * 1.5 < sizes[9]  # measured ≈ 3× (OGG) and ≈ 2.5× (MP3)


BAD_OPTIONS = [
    (dict(format="aiff"), "format"),
    (dict(format="flac", bit_depth="32f"), "bit_depth"),
    (dict(format="wav", bit_depth="8"), "bit_depth"),
    (dict(format="wav", bit_depth=24), "bit_depth"),
    (dict(format="ogg", bit_depth="16"), "bit_depth"),
    (dict(format="mp3", bit_depth="24"), "bit_depth"),
    (dict(format="mp3", sample_rate=96000), "sample_rate"),
    (dict(format="wav", sample_rate=22050), "sample_rate"),
    (dict(format="ogg", quality=10.5), "quality"),
    (dict(format="mp3", quality=-1), "quality"),
    (dict(format="ogg", quality="high"), "quality"),
    (dict(format="wav", quality=5), "quality"),
    (dict(format="flac", quality=5), "quality"),
    (dict(title=3), "title"),
]


@pytest.mark.parametrize("fields,field", BAD_OPTIONS)
def test_bad_combinations_name_the_field(tmp_path, fields, field):
    options = ExportOptions(**fields)
    with pytest.raises(ExportError, match=f"^{field}: ") as caught:
        options.validate()
    assert caught.value.subject == field
    with pytest.raises(ExportError, match=field):
        write_audio(tmp_path / "out" / "take.wav", signal(0.1), SOURCE_RATE, options, sidecar={})
    assert folder_contents(tmp_path) == []


@pytest.mark.parametrize("audio,rate,options,field", [
    (np.full(100, np.nan, np.float32), SOURCE_RATE, ExportOptions(), "audio"),
    (np.zeros((0,), np.float32), SOURCE_RATE, ExportOptions(), "audio"),
    (np.zeros(100, np.int16), SOURCE_RATE, ExportOptions(), "audio"),
    (np.zeros(100, np.float32), 0, ExportOptions(), "source_rate"),
    (np.zeros((100, 3), np.float32), SOURCE_RATE, ExportOptions("mp3"), "channels"),
])
def test_bad_audio_is_refused(tmp_path, audio, rate, options, field):
    with pytest.raises(ExportError, match=f"^{field}: "):
        write_audio(tmp_path / "take.wav", audio, rate, options)
    assert folder_contents(tmp_path) == []


def test_helpers():
    assert [default_extension(fmt) for fmt in FORMATS] == [".wav", ".flac", ".ogg", ".mp3"]
    with pytest.raises(ExportError, match="format"):
        default_extension("aiff")
    assert soundfile_subtype(ExportOptions("wav")) == "PCM_24"  # the default depth
    assert soundfile_subtype(ExportOptions("flac")) == "PCM_24"
    assert soundfile_subtype(ExportOptions("mp3", 44100)) == "MPEG_LAYER_III"


def test_write_takes_is_all_or_nothing_when_encoding_fails(tmp_path, monkeypatch):
    encode, calls = export._encode, []

    def failing(path, audio, options):
        calls.append(path)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        encode(path, audio, options)

    monkeypatch.setattr(export, "_encode", failing)
    takes = [Take(tmp_path / "new" / f"take-{i}.flac", signal(0.2, seed=i), SOURCE_RATE, ExportOptions("flac"),
                  sidecar={"seed": i}) for i in range(3)]
    with pytest.raises(ExportError, match="take-1.flac: cannot write .No space left on device"):
        write_takes(takes)
    assert folder_contents(tmp_path) == []  # no temp file, no first take, not even the new folder


def test_write_takes_removes_renamed_files_when_a_later_rename_fails(tmp_path, monkeypatch):
    replace, calls = os.replace, []

    def failing(source, target):
        calls.append(target)
        if len(calls) == 3:
            raise PermissionError(13, "Permission denied")
        replace(source, target)

    monkeypatch.setattr(export.os, "replace", failing)
    takes = [Take(tmp_path / f"take-{i}.wav", signal(0.2, seed=i), SOURCE_RATE) for i in range(3)]
    with pytest.raises(ExportError, match="take-2.wav: cannot write .Permission denied"):
        write_takes(takes)
    assert folder_contents(tmp_path) == []


def test_write_takes_writes_every_take(tmp_path, monkeypatch):
    takes = [Take(tmp_path / f"take-{i}.ogg", signal(0.2, seed=i), SOURCE_RATE, ExportOptions("ogg", 44100),
                  sidecar={"seed": i}) for i in range(3)]
    results = write_takes(takes)
    assert [r.path for r in results] == [str(t.path) for t in takes]
    assert len(folder_contents(tmp_path)) == 6
    with pytest.raises(ExportError, match="same file"):
        write_takes([takes[0], takes[0]])
    monkeypatch.chdir(tmp_path)  # a relative path is kept as given
    assert write_audio("rel.wav", signal(0.2), SOURCE_RATE).path == "rel.wav"
    assert (tmp_path / "rel.wav").is_file()


def test_unwritable_destinations_leave_nothing(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    good = Take(tmp_path / "ok.wav", signal(0.2), SOURCE_RATE)
    bad = Take(blocker / "sub" / "take.wav", signal(0.2), SOURCE_RATE)
    with pytest.raises(ExportError, match="a-file/sub/take.wav: cannot write"):
        write_takes([good, bad])
    (tmp_path / "folder.wav").mkdir()
    with pytest.raises(ExportError, match="folder.wav: is a folder"):
        write_audio(tmp_path / "folder.wav", signal(0.2), SOURCE_RATE)
    with pytest.raises(ExportError, match="take.wav.json: is a folder"):
        (tmp_path / "take.wav.json").mkdir()
        write_audio(tmp_path / "take.wav", signal(0.2), SOURCE_RATE, sidecar={"seed": 1})
    with pytest.raises(ExportError, match="take.wav.json: sidecar is not plain JSON"):
        write_audio(tmp_path / "x" / "take.wav", signal(0.2), SOURCE_RATE, sidecar={"when": object()})
    assert folder_contents(tmp_path) == ["a-file", "folder.wav", "take.wav.json"]


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_read_only_folder_is_refused(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        try:
            (locked / "probe").touch()
        except PermissionError:
            pass
        else:
            pytest.skip("this user writes through folder permissions (root)")
        with pytest.raises(ExportError, match="locked/take.wav: cannot write .Permission denied"):
            write_audio(locked / "take.wav", signal(0.2), SOURCE_RATE, sidecar={"seed": 1})
        assert list(locked.iterdir()) == []
    finally:
        locked.chmod(0o700)
