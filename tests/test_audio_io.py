import numpy as np
import pytest
import soundfile as sf

from distill.audio_io import AudioFileError, find_audio_files, load_audio, probe, scan_folder

SR = 48000


def _noise(seconds=0.5, channels=1, rate=SR):
    data = np.random.default_rng(0).uniform(-0.5, 0.5, (int(seconds * rate), channels)).astype(np.float32)
    return data[:, 0] if channels == 1 else data


@pytest.mark.parametrize("ext,fmt", [("wav", "WAV"), ("flac", "FLAC"), ("ogg", "OGG"), ("mp3", "MP3"),
                                     ("aiff", "AIFF")])
def test_every_supported_format_loads_as_mono_at_working_rate(tmp_path, ext, fmt):
    path = tmp_path / f"clip.{ext}"
    sf.write(str(path), _noise(0.5, channels=2, rate=44100), 44100, format=fmt)
    audio = load_audio(path)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert abs(audio.shape[0] - SR // 2) < 2000  # resampled; mp3 adds encoder padding


def test_downmix_averages_channels_and_resampling_keeps_pitch(tmp_path):
    t = np.arange(22050) / 22050
    left, right = np.sin(2 * np.pi * 1000 * t), np.sin(2 * np.pi * 1000 * t)
    sf.write(str(tmp_path / "s.wav"), np.stack([left, right * 0], 1).astype(np.float32) * 0.8, 22050)
    audio = load_audio(tmp_path / "s.wav")
    assert audio.shape[0] == SR
    assert abs(np.abs(audio[1000:-1000]).max() - 0.4) < 0.01  # (0.8 + 0) / 2
    spectrum = np.abs(np.fft.rfft(audio))
    assert abs(np.argmax(spectrum) * SR / audio.shape[0] - 1000) < 2


def _expect(path, fragment, **kwargs):
    with pytest.raises(AudioFileError) as info:
        load_audio(path, **kwargs)
    assert info.value.path == str(path)
    assert fragment in info.value.reason
    assert str(path) in str(info.value)


def test_missing_file(tmp_path):
    _expect(tmp_path / "nope.wav", "does not exist")


def test_empty_file(tmp_path):
    (tmp_path / "empty.wav").write_bytes(b"")
    _expect(tmp_path / "empty.wav", "empty file")


def test_text_file_with_audio_extension(tmp_path):
    (tmp_path / "notes.mp3").write_text("these are my lyrics, not audio\n" * 20)
    _expect(tmp_path / "notes.mp3", "not a readable audio file")


def test_random_bytes_are_not_audio(tmp_path):
    (tmp_path / "junk.flac").write_bytes(np.random.default_rng(1).bytes(5000))
    _expect(tmp_path / "junk.flac", "not a readable audio file")


@pytest.mark.parametrize("ext,fmt", [("wav", "WAV"), ("aiff", "AIFF"), ("flac", "FLAC"), ("mp3", "MP3")])
def test_truncated_files_are_refused(tmp_path, ext, fmt):
    whole = tmp_path / f"whole.{ext}"
    sf.write(str(whole), _noise(1.0), SR, format=fmt)
    data = whole.read_bytes()
    cut = tmp_path / f"cut.{ext}"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(AudioFileError) as info:
        load_audio(cut)
    assert "truncated" in info.value.reason or "corrupt" in info.value.reason


def test_zero_length_audio(tmp_path):
    sf.write(str(tmp_path / "zero.wav"), np.zeros((0, 1), np.float32), SR)
    _expect(tmp_path / "zero.wav", "zero length")


def test_too_short(tmp_path):
    sf.write(str(tmp_path / "blip.wav"), _noise(0.01), SR)
    _expect(tmp_path / "blip.wav", "too short")


def test_nan_and_inf_samples(tmp_path):
    data = _noise(0.5)
    data[100] = np.nan
    sf.write(str(tmp_path / "nan.wav"), data, SR, subtype="FLOAT")
    _expect(tmp_path / "nan.wav", "NaN")
    data[100] = np.inf
    sf.write(str(tmp_path / "inf.wav"), data, SR, subtype="FLOAT")
    _expect(tmp_path / "inf.wav", "infinite")


def test_digital_silence(tmp_path):
    sf.write(str(tmp_path / "silent.wav"), np.zeros(SR, np.float32), SR)
    _expect(tmp_path / "silent.wav", "digital silence")


def test_too_many_channels(tmp_path):
    sf.write(str(tmp_path / "multi.wav"), _noise(0.2, channels=10), SR)
    _expect(tmp_path / "multi.wav", "10 channels")
    sf.write(str(tmp_path / "surround.wav"), _noise(0.2, channels=6), SR)
    assert load_audio(tmp_path / "surround.wav").ndim == 1  # 5.1 is down-mixed


def test_directory_named_like_audio(tmp_path):
    (tmp_path / "folder.wav").mkdir()
    with pytest.raises(AudioFileError, match="not a regular file"):
        probe(tmp_path / "folder.wav")


def test_find_audio_files_rules(tmp_path):
    (tmp_path / "sub dir" / "deeper").mkdir(parents=True)
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".distill").mkdir()
    names = ["A.WAV", "sub dir/b.Flac", "sub dir/deeper/ç ü 音.ogg", ".secret.wav", ".hidden/x.wav",
             ".distill/cache.wav", "readme.txt", "c.aif"]
    for name in names:
        (tmp_path / name).write_bytes(b"x")
    found = [p.relative_to(tmp_path).as_posix() for p in find_audio_files(tmp_path)]
    assert found == ["A.WAV", "c.aif", "sub dir/b.Flac", "sub dir/deeper/ç ü 音.ogg"]


def test_find_audio_files_bad_folder(tmp_path):
    with pytest.raises(FileNotFoundError):
        find_audio_files(tmp_path / "missing")
    (tmp_path / "f.wav").write_bytes(b"x")
    with pytest.raises(NotADirectoryError):
        find_audio_files(tmp_path / "f.wav")


def test_scan_folder_reports_each_file(tmp_path):
    sf.write(str(tmp_path / "good é.wav"), _noise(0.5, channels=2, rate=44100), 44100)
    (tmp_path / "bad.wav").write_text("nope")
    entries = {e.path: e for e in scan_folder(tmp_path)}
    good, bad = entries["good é.wav"], entries["bad.wav"]
    assert good.status == "ok" and good.sample_rate == 44100 and good.channels == 2
    assert abs(good.duration - 0.5) < 1e-6 and good.reason is None
    assert bad.status == "skipped" and "not a readable audio file" in bad.reason and bad.duration is None


@pytest.mark.parametrize("ext,fmt", [("wav", "WAV"), ("flac", "FLAC"), ("ogg", "OGG"), ("mp3", "MP3")])
def test_segments_match_the_whole_file(tmp_path, ext, fmt):
    from distill.audio_io import load_segment

    t = np.arange(44100 * 6) / 44100
    tone = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * np.random.default_rng(0).normal(size=t.size)
    path = tmp_path / f"long.{ext}"
    sf.write(str(path), np.stack([tone, -tone], 1).astype(np.float32) * [1.0, 0.5], 44100, format=fmt)
    whole = load_audio(path)
    for start, length in ((-3000, 50000), (0, 96000), (100_003, 70_000), (len(whole) - 1000, 20000)):
        segment = load_segment(path, start, length, num_samples=len(whole))
        expected = np.zeros(length, np.float32)
        lo, hi = max(start, 0), min(start + length, len(whole))
        expected[lo - start:hi - start] = whole[lo:hi]
        assert segment.shape == (length,)
        assert np.abs(segment - expected).max() < 1e-4, (start, np.abs(segment - expected).max())
