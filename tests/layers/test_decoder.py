"""Full-Scale Decoder: alignment scale, NMF in float32 under autocast, NMF in either memory format."""

from __future__ import annotations

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
