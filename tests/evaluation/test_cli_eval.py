"""`lsms eval` on a saved lsms-nano checkpoint and tiny PNG data; user errors exit 2 with one line."""

import json

import pytest
import torch
from eval_fixtures import write_samples

from lsms.cli import main
from lsms.data.manifest import write_manifest


@pytest.fixture(autouse=True)
def only_eval_command(monkeypatch):
    # The real `lsms` entry point, with only this sub-command registered (independent of other commands).
    monkeypatch.setattr("lsms.cli.COMMAND_MODULES", ["evaluate"])


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # The CPU is shared by parallel jobs; one thread avoids oversubscription (and is faster here).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def checkpoint_and_data(tmp_path_factory):
    import lsms

    root = tmp_path_factory.mktemp("cli_eval")
    torch.manual_seed(0)
    model = lsms.create_model("lsms-nano")
    checkpoint = lsms.save_pretrained(
        model, root / "ckpt", preprocess={"image_size": [64, 64], "window": None}
    )
    manifest = write_manifest(
        write_samples(root / "data", n=4, size=(40, 48)), root / "data" / "manifest.csv"
    )
    return checkpoint, manifest


def test_eval_writes_summary_and_prints_table(checkpoint_and_data, tmp_path, capsys):
    checkpoint, manifest = checkpoint_and_data
    args = [
        "eval",
        "--checkpoint",
        str(checkpoint),
        "--data",
        str(manifest),
        "--batch-size",
        "3",
        "--no-progress",
    ]
    assert main([*args, "--text", "shuffled", "--out", str(tmp_path / "a")]) == 0
    printed = capsys.readouterr().out
    assert "| text | n | Dice (%) | mIoU (%) | oIoU (%)" in printed and "| shuffled | 4 |" in printed
    assert "pooled Dice (%) |" in printed and "oIoU (= pooled IoU)" in printed  # both conventions, named
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    settings = summary["settings"]
    assert settings["checkpoint"] == str(checkpoint.resolve()) and settings["data"] == str(manifest.resolve())
    assert settings["text_variant"] == "shuffled" and settings["image_size"] == [64, 64]
    assert settings["split"] == "val" and settings["threshold"] == 0.5 and "date" in settings
    assert summary["means"]["n"] == 4 and len(summary["per_sample"]) == 4
    assert 0.0 <= summary["means"]["pooled_dice"] <= 1.0
    assert all(0.0 <= row["dice"] <= 1.0 and row["target_pixels"] == 64 for row in summary["per_sample"])
    # Same seed, same numbers; --size overrides the checkpoint's preprocessing.
    assert main([*args, "--text", "shuffled", "--size", "64", "96", "--out", str(tmp_path / "b")]) == 0
    again = json.loads((tmp_path / "b" / "summary.json").read_text())
    assert again["settings"]["image_size"] == [64, 96]
    assert main([*args, "--text", "shuffled", "--out", str(tmp_path / "c")]) == 0
    assert json.loads((tmp_path / "c" / "summary.json").read_text())["per_sample"] == summary["per_sample"]


def test_eval_default_output_folder(checkpoint_and_data, capsys):
    checkpoint, manifest = checkpoint_and_data
    assert main(["eval", "--checkpoint", str(checkpoint), "--data", str(manifest), "--no-progress"]) == 0
    assert (checkpoint / "eval" / "val-full" / "summary.json").is_file()
    assert "lsms eval --checkpoint" in (checkpoint / "eval" / "val-full" / "run.log").read_text()
    assert str(checkpoint / "eval" / "val-full" / "summary.json") in capsys.readouterr().out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--window", "wide"], "window"),
        (["--size", "0"], "--size"),
        (["--threshold", "1"], "threshold"),
        (["--split", "holdout"], "split"),
        (["--split", "test"], "no samples in split 'test'"),
    ],
)
def test_eval_user_errors_exit_2_with_one_line(checkpoint_and_data, capsys, extra, message):
    checkpoint, manifest = checkpoint_and_data
    assert (
        main(["eval", "--checkpoint", str(checkpoint), "--data", str(manifest), "--no-progress", *extra]) == 2
    )
    err = capsys.readouterr().err.strip()
    assert err.startswith("lsms eval: error:") and message in err and "\n" not in err


def test_eval_missing_checkpoint(tmp_path, capsys):
    assert main(["eval", "--checkpoint", str(tmp_path / "none"), "--data", str(tmp_path)]) == 2
    assert "not an lsms checkpoint folder" in capsys.readouterr().err


def test_eval_reports_the_wrong_lesion_rate_on_synthetic_data(checkpoint_and_data, tmp_path, capsys):
    from lsms.data.synth import generate_dataset

    checkpoint, plain = checkpoint_and_data
    manifest = generate_dataset(
        tmp_path / "synth", cases=3, size=64, seed=3, volume_size=192, min_lesion_px=20, write_volumes=False
    )
    args = ["eval", "--checkpoint", str(checkpoint), "--split", "all", "--no-progress"]
    assert main([*args, "--data", str(manifest), "--out", str(tmp_path / "synth_eval")]) == 0
    assert "| text | n | Dice (%) | wrong lesion (%) | mIoU (%)" in capsys.readouterr().out
    summary = json.loads((tmp_path / "synth_eval" / "summary.json").read_text())
    assert 0.0 <= summary["means"]["wrong_lesion"] <= 1.0
    assert all(isinstance(row["wrong_lesion"], bool) for row in summary["per_sample"])
    # A manifest without lesions.csv (the first test's) has no rate at all.
    assert main([*args, "--data", str(plain), "--out", str(tmp_path / "plain")]) == 0
    assert "wrong_lesion" not in json.loads((tmp_path / "plain" / "summary.json").read_text())["means"]
