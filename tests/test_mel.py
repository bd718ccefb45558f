import librosa
import numpy as np
import pytest
import torch

from distill.mel import band_average_weights, hz_to_mel, mel_filterbank, mel_to_hz


@pytest.mark.parametrize("sr,n_fft,n_mels,fmin,fmax", [(48000, 2048, 128, 0.0, None), (22050, 1024, 80, 30.0, 8000.0),
                                                       (48000, 4096, 256, 20.0, 20000.0)])
@pytest.mark.parametrize("norm", ["slaney", None])
@pytest.mark.parametrize("htk", [False, True])
def test_filterbank_matches_librosa(sr, n_fft, n_mels, fmin, fmax, norm, htk):
    ours = mel_filterbank(sr, n_fft, n_mels, fmin, fmax, htk=htk, norm=norm).numpy()
    ref = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax, htk=htk, norm=norm,
                              dtype=np.float64)
    assert ours.shape == ref.shape
    np.testing.assert_allclose(ours, ref, rtol=1e-6, atol=1e-10)


def test_mel_scale_round_trip_and_reference():
    hz = torch.tensor([0.0, 440.0, 1000.0, 8000.0, 24000.0], dtype=torch.float64)
    np.testing.assert_allclose(mel_to_hz(hz_to_mel(hz)).numpy(), hz.numpy(), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(hz_to_mel(hz).numpy(), librosa.hz_to_mel(hz.numpy()), rtol=1e-9)


def test_band_average_rows_sum_to_one_and_cover_every_band():
    w = band_average_weights(48000, 2048, 128)
    np.testing.assert_allclose(w.sum(dim=1).numpy(), 1.0, rtol=1e-12)
    assert (w >= 0).all()


def test_invalid_norm_is_rejected():
    with pytest.raises(ValueError, match="norm"):
        mel_filterbank(48000, 2048, 128, norm="area")
