"""Full-Scale Decoder: alignment scale, NMF against a NumPy reference, NMF in float32 under autocast, NMF in
either memory format."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import lsms
from lsms.layers.decoder import NMF2D, FullScaleDecoder
from lsms.models.complexity import count_macs, count_parameters


def _features(batch: int = 1) -> list[torch.Tensor]:
    return [torch.rand(batch, c, 32 // 2**i, 32 // 2**i) for i, c in enumerate((8, 16, 24, 32))]


@pytest.mark.parametrize("align_stage, expected", [(1, 32), (2, 16), (3, 8)])
def test_features_are_aligned_to_the_chosen_stage(align_stage: int, expected: int) -> None:
    decoder = FullScaleDecoder((8, 16, 24, 32), channels=32, align_stage=align_stage).eval()
    seen = []
    decoder.fuse.register_forward_hook(lambda module, args, out: seen.append(args[0].shape[-1]))
    logits = decoder(_features(), (128, 128))
    assert seen == [expected] and logits.shape == (1, 1, 128, 128)


def test_align_stage_out_of_range_is_refused() -> None:
    with pytest.raises(ValueError, match="align_stage must be in 1..4"):
        FullScaleDecoder((8, 16, 24, 32), align_stage=5)


def test_f2_alignment_keeps_the_parameters_and_cuts_the_decoder_macs(tiny_bert_dir) -> None:
    f1 = lsms.create_model("lsms-f1", text_encoder=str(tiny_bert_dir))
    f2 = lsms.create_model("lsms", text_encoder=str(tiny_bert_dir))
    assert f2.config.decoder_align_stage == 2 and f1.config.decoder_align_stage == 1
    assert count_parameters(f1) == count_parameters(f2)
    f2.load_state_dict(f1.state_dict())  # the same weights fit both
    decoder_f1 = count_macs(f1, (224, 224))["by_module"]["decoder"]
    decoder_f2 = count_macs(f2, (224, 224))["by_module"]["decoder"]
    assert 3.5 < decoder_f1 / decoder_f2 < 4.5  # the decoder works on 4x fewer positions


def test_nmf_runs_in_float32_under_autocast() -> None:
    nmf = NMF2D(16, rank=4).eval()
    x = torch.rand(2, 16, 8, 8)
    plain = nmf(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        autocast = nmf(x)
    assert autocast.dtype == torch.float32
    assert torch.equal(plain, autocast)


def test_nmf_gives_the_same_result_in_channels_last_order() -> None:
    nmf = NMF2D(16, rank=4).eval()
    x = torch.rand(2, 16, 8, 8)
    nchw = nmf(x)
    nhwc = nmf(x.contiguous(memory_format=torch.channels_last))
    assert nhwc.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(nhwc, nchw, atol=1e-5, rtol=1e-5)


def _lee_seung_reconstruction(x: np.ndarray, bases: np.ndarray, steps: int) -> np.ndarray:
    """Textbook multiplicative updates (Lee & Seung 2001) for X ~ W H in float64, written from the
    paper, not from NMF2D: H <- H (W'X) / (W'W H), W <- W (X H') / (W H H'), ``steps`` times, then one
    more H step; H starts as the softmax over ranks of W'X (as in the Hamburger paper's code)."""
    w = bases.astype(np.float64)
    scores = np.exp(w.T @ x - (w.T @ x).max(axis=0))
    h = scores / scores.sum(axis=0)
    for _ in range(steps):
        h = h * (w.T @ x) / (w.T @ w @ h)
        w = w * (x @ h.T) / (w @ h @ h.T)
    h = h * (w.T @ x) / (w.T @ w @ h)
    return w @ h


@pytest.mark.parametrize("groups", [1, 2])
def test_nmf_equals_an_independent_lee_seung_reference(groups: int) -> None:
    nmf = NMF2D(16, rank=4, groups=groups).eval()
    x = torch.rand(2, 16, 6, 5, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        out = nmf(x).double().numpy()
    depth = 16 // groups
    for b in range(2):
        for g in range(groups):
            matrix = x[b, g * depth : (g + 1) * depth].double().reshape(depth, -1).numpy()
            expected = _lee_seung_reconstruction(matrix, nmf.eval_bases[g].numpy(), nmf.eval_steps)
            got = out[b, g * depth : (g + 1) * depth].reshape(depth, -1)
            np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
            # rank 4: never closer to x than its best rank-4 approximation (Eckart-Young), but close
            singular = np.linalg.svd(matrix, compute_uv=False)
            error = np.linalg.norm(matrix - got)
            assert np.sqrt((singular[4:] ** 2).sum()) - 1e-9 <= error < 0.5 * np.linalg.norm(matrix)
