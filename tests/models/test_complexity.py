"""Parameter / FLOP counting and ``lsms info``."""

from __future__ import annotations

import json

import torch.nn as nn

import lsms
from lsms.cli import main
from lsms.models.complexity import count_macs, count_parameters, module_parameters
from lsms.models.paper_table2 import paper_row


def test_counts_add_up_and_scale_with_input_size(tiny_bert_dir):
    model = lsms.create_model("lsms-nano", text_encoder=str(tiny_bert_dir))
    params = count_parameters(model)
    assert (
        params["visual"] + params["text_encoder"]
        == params["total"]
        == sum(p.numel() for p in model.parameters())
    )
    assert module_parameters(model)["text_encoder"] == params["text_encoder"]
    small, large = count_macs(model, (64, 64)), count_macs(model, (128, 128))
    stages = [small["by_module"][f"stages.{i}"] for i in range(4)]
    assert small["by_module"]["stages.*"] == sum(stages) > 0
    # convolutions scale with the pixel count, the text encoder does not
    image_macs = small["total"] - small["text_encoder"]
    assert 3.5 < (large["total"] - large["text_encoder"]) / image_macs < 4.5
    assert large["text_encoder"] == small["text_encoder"] > 0


def test_conv_macs_follow_the_multiply_add_convention():
    conv = nn.Conv2d(4, 8, 3, padding=1, bias=False)

    class Wrapper(nn.Module):
        config = type("C", (), {"in_chans": 4})()

        def __init__(self):
            super().__init__()
            self.conv = conv

        def forward(self, image):
            return self.conv(image)

    assert count_macs(Wrapper(), (10, 10))["total"] == 4 * 8 * 9 * 10 * 10


def test_info_cli_prints_params_and_flops(capsys):
    assert main(["info", "--model", "lsms-nano", "--size", "64", "64"]) == 0
    out = capsys.readouterr().out
    assert "params: visual 0.58M" in out and "one multiply-add counts as 1" in out and "| decoder |" in out
    assert "paper Table 2, LSMS (full-size network): params 8.78M, Flops 8.91G (MACs, as above)" in out


def test_info_puts_the_papers_table2_row_beside_each_baseline(capsys):
    assert main(["info", "--model", "unet-small", "--size", "32", "32"]) == 0
    assert "paper Table 2, U-Net (full-size network): params 14.8M, Flops 50.3G (probably 2 x MACs)" in (
        capsys.readouterr().out
    )
    assert main(["info", "--model", "attention-unet-small", "--size", "32", "32", "--json"]) == 0
    row = json.loads(capsys.readouterr().out)["paper_table2"]
    assert row["method"] == "AttUNet" and row["params_m"] == 34.9 and row["qata"] == [79.31, 70.04]


def test_paper_rows_follow_the_text_mode():
    assert paper_row("lsms", uses_text=False).refhl == (58.75, 49.39)
    assert paper_row("lvit-small").gflops == 54.1
    assert paper_row("late-fusion-unet") is None  # not in the paper


def test_info_reports_the_decoder_alignment(capsys):
    for preset, stage in (("lsms", 2), ("lsms-f1", 1)):
        assert main(["info", "--model", preset, "--size", "64", "64"]) == 0
        assert f"decoder: Full-Scale Decoder aligned at F{stage} (1/{2 ** (stage + 1)} of the input" in (
            capsys.readouterr().out
        )
        assert main(["info", "--model", preset, "--size", "64", "64", "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["decoder_align_stage"] == stage
