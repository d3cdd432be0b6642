"""Report figures: PNG files are written, read back with the expected size, and bad input is refused."""

import csv

import matplotlib.image
import pytest

from lsms.errors import DataError
from lsms.viz.plots import plot_bar, plot_loss_curve, plot_scatter


def _assert_png(path):
    assert path.is_file()
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = matplotlib.image.imread(path)
    assert image.shape[0] > 100 and image.shape[1] > 100


def test_loss_curve_from_csv_with_sparse_validation(tmp_path):
    log = tmp_path / "log.csv"
    with open(log, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["epoch", "step", "train_loss", "val_loss", "val_dice"])
        writer.writeheader()
        for step in range(1, 7):
            writer.writerow(
                {
                    "epoch": (step - 1) // 3,
                    "step": step,
                    "train_loss": 1 / step,
                    "val_loss": 0.8 / step if step % 3 == 0 else "",
                    "val_dice": "",
                }
            )
    _assert_png(plot_loss_curve(log, tmp_path / "out" / "loss.png"))


def test_loss_curve_from_rows_without_step(tmp_path):
    rows = [{"loss": 1.0}, {"loss": 0.5}, {"loss": 0.25}]
    _assert_png(plot_loss_curve(rows, tmp_path / "loss.png"))


def test_loss_curve_refuses_logs_without_loss(tmp_path):
    with pytest.raises(DataError, match="loss"):
        plot_loss_curve([{"step": 1, "dice": 0.5}], tmp_path / "x.png")
    with pytest.raises(DataError, match="missing.csv"):
        plot_loss_curve(tmp_path / "missing.csv", tmp_path / "x.png")


def test_bar_and_scatter(tmp_path):
    _assert_png(plot_bar({"full": 0.79, "half": 0.75, "shuffled": 0.41}, tmp_path / "bar.png", "Dice"))
    points = {"lsms-nano": (1.2, 0.71), "unet": (7.8, 0.69)}
    _assert_png(
        plot_scatter(points, tmp_path / "scatter.png", "parameters (M)", "Dice", title="size vs Dice")
    )
    with pytest.raises(DataError):
        plot_bar({}, tmp_path / "empty.png", "Dice")
    with pytest.raises(DataError):
        plot_scatter({}, tmp_path / "empty.png", "x", "y")
