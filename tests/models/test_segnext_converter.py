"""SegNeXt MSCAN checkpoint conversion, on synthetic state dicts that use the real key names."""

from __future__ import annotations

import pytest
import torch

import lsms
from lsms.convert.segnext import checkpoint_filter_fn, load_segnext_weights
from lsms.errors import CheckpointError


def mscan_state_dict(model, spelling: str) -> dict[str, torch.Tensor]:
    """An MSCAN-shaped state dict for ``model``'s widths, in the original or the mmseg-1.x spelling."""
    generator = torch.Generator().manual_seed(1)

    def rand(*shape):
        return torch.randn(*shape, generator=generator)

    state = {"patch_embed1.proj.0.weight": rand(model.config.embed_dims[0] // 2, 3, 3, 3)}
    dwconv = "mlp.dwconv.dwconv" if spelling == "original" else "mlp.dwconv"
    for stage, (dim, depth) in enumerate(
        zip(model.config.embed_dims, model.config.depths, strict=True), start=1
    ):
        if stage > 1:
            state[f"patch_embed{stage}.proj.weight"] = rand(dim, model.config.embed_dims[stage - 2], 3, 3)
            state[f"patch_embed{stage}.norm.weight"] = rand(dim)
        for block in range(depth):
            prefix = f"block{stage}.{block}."
            gate = prefix + "attn.spatial_gating_unit."
            state[gate + "conv0.weight"] = rand(dim, 1, 5, 5)
            state[gate + "conv0.bias"] = rand(dim)
            for unit, kernel in enumerate((7, 11, 21)):
                state[gate + f"conv{unit}_1.weight"] = rand(dim, 1, 1, kernel)
                state[gate + f"conv{unit}_2.weight"] = rand(dim, 1, kernel, 1)
                state[gate + f"conv{unit}_1.bias"] = rand(dim)
                state[gate + f"conv{unit}_2.bias"] = rand(dim)
            state[gate + "conv3.weight"] = rand(dim, dim, 1, 1)
            state[prefix + "attn.proj_1.weight"] = rand(dim, dim, 1, 1)
            state[prefix + f"{dwconv}.weight"] = rand(dim * 8, 1, 3, 3)
            state[prefix + "layer_scale_1"] = rand(dim)
        state[f"norm{stage}.weight"] = rand(dim)
    return {"state_dict": {"backbone." + k: v for k, v in state.items()}}


@pytest.mark.parametrize("spelling", ["original", "mmseg-1.x"])
def test_visual_knowledge_branch_is_loaded_from_both_spellings(spelling):
    model = lsms.create_model("lsms-nano", use_text=False, mlp_ratios=(8, 8, 8, 8))
    checkpoint = mscan_state_dict(model, spelling)
    source = {k.removeprefix("backbone."): v for k, v in checkpoint["state_dict"].items()}
    converted, report = checkpoint_filter_fn(checkpoint, model, scope="visual-knowledge")
    model.load_state_dict(converted, strict=False)
    block = model.stages[2][1].attention
    torch.testing.assert_close(
        block.pre_conv.weight, source["block3.1.attn.spatial_gating_unit.conv0.weight"]
    )
    torch.testing.assert_close(
        block.conv_units[2].conv_col.weight, source["block3.1.attn.spatial_gating_unit.conv2_2.weight"]
    )
    torch.testing.assert_close(
        block.conv_units[1].conv_row.bias, source["block3.1.attn.spatial_gating_unit.conv1_1.bias"]
    )
    assert not any("conv3" in entry or "dwconv" in entry for entry in report.loaded)  # out of this scope
    assert any("proj_1" in key for key in report.skipped)
    assert report.missing == []


@pytest.mark.parametrize("spelling", ["original", "mmseg-1.x"])
def test_scope_all_maps_feed_forward_stem_and_downsampling(spelling):
    model = lsms.create_model("lsms-nano", use_text=False, mlp_ratios=(8, 8, 8, 8), block_style="pre-norm")
    checkpoint = mscan_state_dict(model, spelling)
    source = {k.removeprefix("backbone."): v for k, v in checkpoint["state_dict"].items()}
    dwconv = "mlp.dwconv.dwconv" if spelling == "original" else "mlp.dwconv"
    converted, _ = checkpoint_filter_fn(checkpoint, model, scope="all")
    model.load_state_dict(converted, strict=False)
    torch.testing.assert_close(
        model.stages[0][0].feed_forward.depthwise.weight, source[f"block1.0.{dwconv}.weight"]
    )
    torch.testing.assert_close(model.downsamples[1].conv.weight, source["patch_embed3.proj.weight"])
    torch.testing.assert_close(
        model.stages[1][0].layer_scale_attention.flatten(), source["block2.0.layer_scale_1"]
    )
    # RGB stem -> one input channel: the mean response to a grey image is kept
    stem = source["patch_embed1.proj.0.weight"]
    torch.testing.assert_close(model.stem.layers[0].weight, stem.sum(1, keepdim=True))


def test_load_from_file_reports_and_rejects_foreign_files(tmp_path):
    model = lsms.create_model("lsms-nano", use_text=False, mlp_ratios=(8, 8, 8, 8))
    path = tmp_path / "mscan.pth"
    torch.save(mscan_state_dict(model, "original"), path)
    report = load_segnext_weights(model, path)
    assert len(report.loaded) == 5 * 14  # 5 blocks x (conv0 w+b, 3 units x (row w+b, col w+b))
    other = tmp_path / "other.pth"
    torch.save({"encoder.weight": torch.zeros(3)}, other)
    with pytest.raises(CheckpointError, match="no MSCAN weights matched"):
        load_segnext_weights(model, other)
    (tmp_path / "broken.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot read"):
        load_segnext_weights(model, tmp_path / "broken.pth")


def test_convert_cli_saves_a_loadable_checkpoint(tmp_path, capsys, tiny_bert_dir):
    from lsms.cli import main

    model = lsms.create_model("lsms-nano", mlp_ratios=(8, 8, 8, 8), text_encoder=str(tiny_bert_dir))
    path = tmp_path / "mscan.pth"
    torch.save(mscan_state_dict(model, "mmseg-1.x"), path)
    out = tmp_path / "converted"
    code = main(["convert", "segnext", str(path), "--model", "lsms-nano", "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "loaded: 70" in printed and "skipped:" in printed and "missing: 0" in printed
    converted = lsms.from_pretrained(out)
    source = torch.load(path, weights_only=True)["state_dict"]
    torch.testing.assert_close(
        converted.stages[0][0].attention.pre_conv.weight,
        source["backbone.block1.0.attn.spatial_gating_unit.conv0.weight"],
    )
