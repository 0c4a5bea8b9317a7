"""Mel filterbanks and the DCT against librosa 0.11's values (computed once, written here) and scipy."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.fft

from modelyard.nn.mel import dct_matrix, hz_to_mel, mel_filterbank, mel_to_hz


def test_slaney_filterbank_matches_librosa() -> None:
    # librosa.filters.mel(sr=8000, n_fft=256, n_mels=40): its row sums, peak bins and peak values
    fb = mel_filterbank(8000, 256, 40)
    assert fb.shape == (40, 129)
    np.testing.assert_allclose(
        fb.sum(1)[:6], [0.0317226015, 0.0317226015, 0.0317226015, 0.0317226015, 0.0319334008, 0.0331402011], rtol=1e-5
    )
    assert fb.argmax(1)[::8].tolist() == [2, 16, 31, 50, 80]
    np.testing.assert_allclose(
        [fb[i].max() for i in (0, 13, 39)], [0.01586131937801838, 0.013811576180160046, 0.004292745143175125], rtol=1e-6
    )


def test_htk_filterbank_matches_librosa() -> None:
    fb = mel_filterbank(8000, 256, 40, htk=True)  # librosa.filters.mel(..., htk=True)
    assert fb.argmax(1)[::8].tolist() == [1, 12, 27, 49, 81]
    np.testing.assert_allclose(
        [fb[i].max() for i in (0, 13, 39)], [0.02756310999393463, 0.012255812995135784, 0.00466868607327342], rtol=1e-6
    )


@pytest.mark.parametrize("htk", [False, True])
def test_mel_scale_round_trips(htk: bool) -> None:
    hz = np.array([0.0, 100.0, 999.0, 1000.0, 1001.0, 4000.0, 8000.0])
    np.testing.assert_allclose(mel_to_hz(hz_to_mel(hz, htk), htk), hz, atol=1e-9)
    assert hz_to_mel(np.array(1000.0)) == pytest.approx(15.0)  # Slaney: 1 kHz is 15 mels


def test_dct_matches_scipy_orthonormal_dct_ii() -> None:
    x = np.random.default_rng(0).standard_normal((40, 7))
    np.testing.assert_allclose(dct_matrix(13, 40) @ x, scipy.fft.dct(x, type=2, norm="ortho", axis=0)[:13], atol=1e-5)
