"""benchmarks/compare.py and benchmarks/ablations.py: table building on fake result JSONs, and one tiny run."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import ablations  # noqa: E402
import common  # noqa: E402
import compare  # noqa: E402


def fake_result(key: str, dataset: str, seed: int, dice: dict[str, float], **extra) -> dict:
    """A result JSON as common.run writes it, with the fields the reports read."""
    return {
        "key": key,
        "seed": seed,
        "data": {"name": dataset},
        "budget": {"steps": 600, "batch_size": 8, "lr": 1e-3},
        "metrics": {v: {"dice": d, "miou": d - 0.1, "oiou": d, "n": 10} for v, d in dice.items()},
        "complexity_224": {"params_m": 0.5, "gmacs": 0.25},
        "date": f"2026-01-0{seed + 1}T00:00:00Z",
        "machine": {"nproc": 2, "cpu": "test cpu", "torch": "x"},
        **extra,
    }


def compare_result(dataset: str, method: str, seed: int, dice: dict[str, float]) -> tuple[str, dict]:
    key = compare.run_key(dataset, method, seed)
    return key, fake_result(key, dataset, seed, dice, method=method)


def table_row(markdown: str, label: str) -> list[str]:
    """Cells of the first table row whose first cell is ``label``."""
    for line in markdown.splitlines():
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if cells[0] == label:
            return cells
    raise AssertionError(f"no row {label!r} in\n{markdown}")


@pytest.fixture
def compare_results() -> dict[str, dict]:
    text = {"full": 0.8, "half": 0.7, "quarter": 0.6, "shuffled": 0.3, "none": 0.2}
    return dict(
        [
            compare_result("synth", "lsms-nano", 0, text),
            compare_result("synth", "lsms-nano", 1, {**text, "full": 0.9}),
            compare_result("synth", "lsms-nano-textfree", 0, {"full": 0.35}),
            compare_result("synth", "lvit-small", 0, {**text, "full": 0.5}),
            compare_result("synth", "late-fusion-unet-small", 0, {**text, "full": 0.6}),
            compare_result("synth", "unet-small", 0, {"full": 0.3}),
            compare_result("qata", "lsms-nano", 0, {**text, "full": 0.75}),
        ]
    )


def test_table2_rows_put_our_numbers_beside_the_papers(compare_results):
    table = compare.table2(compare_results)
    lsms = table_row(table, "LSMS (lsms-nano)")
    # method, text, params, GMACs, synth Dice/mIoU, QaTa Dice/mIoU, paper RefHL, paper QaTa, paper size
    assert lsms[1:8] == ["100%", "0.50", "0.25", "80.00", "70.00", "75.00", "65.00"]
    assert lsms[8:12] == ["78.14", "70.22", "84.05", "75.70"]
    assert table_row(table, "LSMS (25%) (lsms-nano)")[4] == "60.00"
    assert table_row(table, "LSMS (50%) (lsms-nano)")[4] == "70.00"
    unet = table_row(table, "U-Net (unet-small)")
    assert unet[1] == "no" and unet[4] == "30.00" and unet[6] == "–"  # no QaTa run
    assert "UNet++" not in table  # runs that do not exist make no row


def test_text_controls_report_the_full_minus_shuffled_gap(compare_results):
    row = table_row(compare.text_controls(compare_results), "LSMS (lsms-nano)")
    assert row[1] == "synth" and row[2:7] == ["80.00", "70.00", "60.00", "30.00", "20.00"]
    assert row[7] == "+50.00"
    assert row[8:] == ["–"] * 5  # runs from before the wrong-lesion rate


def test_text_controls_report_the_wrong_lesion_rate_per_text_variant(compare_results):
    key = compare.run_key("synth", "lsms-nano", 0)
    for variant, metrics in compare_results[key]["metrics"].items():
        metrics["wrong_lesion"] = {"full": 0.05, "half": 0.1, "quarter": 0.2}.get(variant, 0.5)
    row = table_row(compare.text_controls(compare_results), "LSMS (lsms-nano)")
    assert row[8:] == ["5.00", "10.00", "20.00", "50.00", "50.00"]


def test_headline_averages_over_seeds_and_pairs_lsms_with_every_text_baseline(compare_results):
    assert compare.best_text_baseline(compare_results) == "late-fusion-unet-small"
    assert compare.best_text_baseline({}) is None
    table = compare.headline(compare_results)
    lsms = table_row(table, "LSMS (lsms-nano)")
    assert lsms[1:4] == ["2", "[0, 1]", "85.00 ± 7.07"] and lsms[6] == "–"
    late_fusion = table_row(table, "Late-fusion U-Net (small)")
    assert late_fusion[3] == "60.00 ± 0.00"
    assert late_fusion[6] == "+20.00 ± 0.00 (1)"  # paired on seed 0 only: 80 - 60
    assert table_row(table, "LViT (lvit-small)")[3] == "50.00 ± 0.00"
    shuffled = table_row(table, "LSMS (lsms-nano) with shuffled text")
    assert shuffled[3] == "30.00 ± 0.00" and shuffled[6] == "+55.00 ± 7.07 (2)"  # 80-30, 90-30


def test_report_only_writes_tables_and_plots(tmp_path, compare_results, capsys):
    for key, result in compare_results.items():
        (tmp_path / f"{key}.json").write_text(json.dumps(result))
    out_md = tmp_path / "table2.md"
    assert compare.main(["--report-only", "--results-dir", str(tmp_path), "--out-md", str(out_md)]) == 0
    report = out_md.read_text()
    assert "## Table 2 at CPU scale" in report
    assert (
        "## Headline (synthetic benchmark, all seeds)" in report
        and "## Headline (QaTa-COV19, all seeds)" in report
    )
    for name in ("synth_dice.png", "synth_dice_vs_params_m.png", "synth_dice_vs_gmacs.png", "qata_dice.png"):
        assert (tmp_path / name).stat().st_size > 1000


def test_ablation_rows_share_runs_for_identical_configs():
    configs = ablations.unique_configs()
    assert len(configs) == 20  # 18 of the paper's rows + 2 of part (f)
    assert ablations.config_key({}) == "default"
    assert ablations.config_key(
        {"kernel_sizes": [7, 11, 21], "pixel_map": True, "decoder_stages": (2, 3, 4)}
    ) == ("default")
    assert ablations.config_key({"decoder_design": "concat-head-mlp", "decoder_stages": (1, 2, 3, 4)}) == (
        "decoder_stages-1-2-3-4"
    )
    assert configs["kernel_sizes-7-11__pixel_map-False"] == {"kernel_sizes": (7, 11), "pixel_map": False}
    assert sorted(ablations.run_order()) == sorted(configs)
    assert ablations.run_order()[:2] == ["use_fsd-False", "default"]
    with pytest.raises(ValueError, match="not_a_field"):
        ablations.config_key({"not_a_field": 1})


def test_table3_fills_every_row_of_a_shared_run():
    key = ablations.run_key("default", 0)
    results = {key: fake_result(key, "synth", 0, {"full": 0.77})}
    table = ablations.table3(results)
    assert table.count("| 77.00 |") == 4  # (b) with PixelMap, (c) with FSD, (e) S2-S4, (f) default
    assert table_row(table, "LSMS (w/o FSD)")[2] == "–"
    assert table_row(table, "S2, S3, S4")[6:8] == ["78.14", "70.22"]


def test_write_json_is_atomic_and_load_results_reads_it_back(tmp_path):
    common.write_json(tmp_path / "a.json", {"x": (1, 2)})
    assert common.load_results(tmp_path) == {"a": {"x": [1, 2]}}
    assert not list(tmp_path.glob("*.tmp"))
    assert common.mean_std([0.5]) == (0.5, 0.0)


def test_a_run_held_by_a_live_process_is_skipped_and_a_stale_lock_is_taken(tmp_path):
    lock = tmp_path / "run.lock"
    assert common._claim(lock)
    assert not common._claim(lock)  # held by this (live) process
    lock.write_text("999999999")  # no such process
    assert common._claim(lock)


def synth_spec(tmp_path: Path, method: str = "lsms-nano", seed: int = 0, **args) -> common.RunSpec:
    namespace = argparse.Namespace(
        **{
            "max_eval": None, "synth_dir": tmp_path, "qata_dir": tmp_path, "steps": None, "batch_size": 8,
            "lr": 1e-3, "val_every": None, "qata_steps": 150, "train_text": "mixed", **args,
        }
    )  # fmt: skip
    data, budget = compare.dataset_specs(namespace)["synth"]
    return compare.make_spec(compare.METHODS_BY_ID[method], data, budget, seed)


def test_compare_trains_on_mixed_expressions_and_feeds_every_stage_to_the_nano_decoder(tmp_path):
    config = common._train_config(synth_spec(tmp_path), tmp_path / "run", threads=1)
    assert config.data.text_variant == "mixed"
    assert tuple(config.model.overrides["decoder_stages"]) == (1, 2, 3, 4)
    textfree = common._train_config(synth_spec(tmp_path, "lsms-nano-textfree"), tmp_path / "run", 1)
    assert textfree.model.overrides == {"decoder_stages": (1, 2, 3, 4), "use_text": False}
    full = common._train_config(synth_spec(tmp_path, train_text="full"), tmp_path / "run", 1)
    assert full.data.text_variant == "full"


def test_a_run_folder_of_another_protocol_is_not_reused(tmp_path):
    from lsms.training.config import dump_config

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    dump_config(common._train_config(synth_spec(tmp_path), run_dir, 1), run_dir / "config.yaml")
    common._check_same_config(run_dir, common._train_config(synth_spec(tmp_path), run_dir, threads=2))
    other = common._train_config(synth_spec(tmp_path, train_text="full", steps=100), run_dir, 1)
    with pytest.raises(SystemExit, match=r"another config \(data.text_variant, train.max_steps\)"):
        common._check_same_config(run_dir, other)


@pytest.mark.slow
def test_tiny_end_to_end_run_then_skip(tmp_path):
    args = [
        "--datasets", "synth", "--methods", "lsms-nano", "unet-small", "--steps", "2", "--val-every", "1",
        "--max-eval", "3", "--synth-cases", "3", "--synth-dir", str(tmp_path / "synth"),
        "--runs-dir", str(tmp_path / "runs"), "--results-dir", str(tmp_path / "results"),
    ]  # fmt: skip
    assert compare.main(args) == 0
    first = common.load_results(tmp_path / "results")
    assert set(first) == {"synth__lsms-nano__s0", "synth__unet-small__s0"}
    lsms = first["synth__lsms-nano__s0"]
    assert set(lsms["metrics"]) == set(compare.TEXT_VARIANTS) and lsms["metrics"]["full"]["n"] == 3
    assert all(0.0 <= metrics["wrong_lesion"] <= 1.0 for metrics in lsms["metrics"].values())
    assert lsms["budget"]["steps"] == 2 and lsms["uses_text"] is True
    assert lsms["budget"]["text_variant"] == "mixed"
    assert set(first["synth__unet-small__s0"]["metrics"]) == {"full"}
    # A second call finds the JSONs and trains nothing.
    (tmp_path / "runs").rename(tmp_path / "moved")
    assert compare.main(args) == 0
    assert not (tmp_path / "runs").exists()
    assert common.load_results(tmp_path / "results") == first


def test_machine_info_counts_usable_cores_not_omp_threads(monkeypatch):
    import os

    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the queues set it; GNU nproc would then say 1
    assert common.machine_info()["nproc"] == len(os.sched_getaffinity(0))
