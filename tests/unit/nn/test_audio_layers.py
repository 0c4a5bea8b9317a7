"""The logmel/mfcc layers: the conv1d STFT against torch.stft, mel power against librosa, shapes and ONNX."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from modelyard.errors import ShapeError, SpecError
from modelyard.nn.builder import build_model
from modelyard.nn.layers.audio import LogMel, LogMelOptions


def build(layers: list, input_shape: tuple[int, ...]) -> torch.nn.Module:
    return build_model({"input": list(input_shape), "layers": layers})


def _chirp() -> torch.Tensor:
    t = np.arange(4000) / 8000
    y = 0.5 * np.sin(2 * np.pi * (300 + 900 * t) * t) + 0.1 * np.sin(2 * np.pi * 2500 * t)
    return torch.from_numpy(y.astype(np.float32))[None]


@pytest.mark.parametrize(("n_fft", "win", "hop"), [(256, 200, 80), (512, None, None), (64, 31, 7)])
def test_stft_power_equals_torch_stft(n_fft: int, win: int | None, hop: int | None) -> None:
    layer = LogMel(LogMelOptions(sample_rate=8000, n_fft=n_fft, win_length=win, hop_length=hop, n_mels=20))
    x = torch.randn(3, 1000, dtype=torch.float32)
    w = win or n_fft
    ref = (
        torch.stft(
            x.double(),
            n_fft,
            hop_length=hop or w // 4,
            win_length=w,
            window=torch.hann_window(w, dtype=torch.float64),
            center=True,
            pad_mode="constant",
            return_complex=True,
        ).abs()
        ** 2
    )
    got = layer.power(x).double()
    assert got.shape == ref.shape
    torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-4 * float(ref.max()))


def test_log_mel_matches_librosa_melspectrogram() -> None:
    # librosa.feature.melspectrogram(y, sr=8000, n_fft=256, hop_length=80, win_length=200, n_mels=40,
    # center=True, pad_mode="constant", power=2.0) of the chirp above: four values and the sum
    layer = LogMel(LogMelOptions(sample_rate=8000, n_fft=256, win_length=200, hop_length=80, n_mels=40, eps=1e-6))
    mel = (torch.exp(layer(_chirp()).double()) - 1e-6)[0, 0]
    assert mel.shape == (40, 51)
    got = [float(mel[i, j]) for i, j in ((0, 0), (5, 10), (20, 25), (39, 49))]
    np.testing.assert_allclose(
        got, [0.16407054662704468, 0.004170505795627832, 4.004044455996336e-07, 1.2298950423428323e-05], rtol=2e-3
    )
    assert float(mel.sum()) == pytest.approx(1037.3603515625, rel=1e-4)


def test_mfcc_matches_librosa() -> None:
    # librosa.feature.mfcc(S=librosa.power_to_db(S, top_db=None), n_mfcc=13), S as above of the chirp plus a
    # faint broadband tone (no mel band near zero, where float32 and librosa's amin would part)
    n = np.arange(4000)
    x = _chirp() + torch.from_numpy((0.01 * np.sin(2 * np.pi * 0.1234567 * n**2)).astype(np.float32))
    net = build(
        [{"mfcc": {"sample_rate": 8000, "n_fft": 256, "win_length": 200, "hop_length": 80, "eps": 1e-10}}], (4000,)
    )
    out = net(x)[0, 0]
    assert out.shape == (13, 51)
    got = [float(out[i, j]) for i, j in ((0, 0), (1, 10), (12, 25), (5, 40))]
    np.testing.assert_allclose(
        got, [-154.1115264892578, 13.193909645080566, 24.67790985107422, 49.89112091064453], rtol=2e-3
    )


def test_layouts_and_inferred_shapes() -> None:
    image = build([{"logmel": {"sample_rate": 8000, "n_fft": 256, "hop_length": 80, "n_mels": 32}}], (8000,))
    assert image.output_shape == (1, 32, 101)
    frames = build([{"logmel": {"sample_rate": 8000, "hop_length": 80, "layout": "frames"}}, {"gru": 8}], (8000,))
    assert frames(torch.zeros(2, 8000)).shape[0] == 2


def test_bad_audio_layer_specs_are_one_line_errors() -> None:
    with pytest.raises(ShapeError, match=r"raw audio samples \[L\].*received shape \[1, 28, 28\]"):
        build([{"logmel": {}}], (1, 28, 28))
    with pytest.raises(SpecError, match="f_max"):
        build([{"logmel": {"sample_rate": 8000, "f_max": 6000}}], (8000,))
    with pytest.raises(ShapeError, match="n_mfcc"):
        build([{"mfcc": {"n_mels": 10, "n_mfcc": 20}}], (8000,))


def test_audio_features_export_to_onnx_and_agree_with_torch() -> None:
    from modelyard.compression.onnx_graph import export_onnx, ort_session

    net = build(
        [
            {"logmel": {"sample_rate": 8000, "n_fft": 256, "hop_length": 80}},
            {"conv2d": {"filters": 4, "kernel": 3, "activation": "relu"}},
            "global_avg_pool",
            {"dense": 10},
        ],
        (8000,),
    ).eval()
    data = export_onnx(net)  # checks the graph against torch on random inputs
    session = ort_session(data)
    x = _chirp().repeat(3, 2)  # a real signal too: [3, 8000]
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    torch.testing.assert_close(torch.from_numpy(got), net.probabilities(net(x)).detach(), rtol=1e-4, atol=1e-5)
