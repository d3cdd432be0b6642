"""_evaluate() on tiny PNG samples with a fake text-conditioned model whose right answers are known."""

import json

import numpy as np
import pytest
import torch
from eval_fixtures import FakeImageOnlyModel, write_samples
from PIL import Image

from lsms.errors import ConfigError, DataError
from lsms.evaluation import EvaluationResult, evaluate
from lsms.evaluation.text_variants import apply_text_variant, derangement
from lsms.predictor import Predictor

SIZE = (40, 48)  # original H, W of the fixture images


def _evaluate(
    model, samples, *, image_size: tuple[int, int], threshold: float = 0.5, batch_size: int = 8, **kwargs
) -> EvaluationResult:
    """evaluate() on the predictor of ``model`` with these settings."""
    predictor = Predictor(model, image_size=image_size, threshold=threshold, batch_size=batch_size)
    return evaluate(predictor, samples, **kwargs)


def test_full_text_is_perfect_and_rows_follow_input_order(fake_model, samples):
    result = _evaluate(fake_model, samples, image_size=SIZE, batch_size=4, progress=False)
    means = result.means
    assert means["dice"] == means["miou"] == means["oiou"] == 1.0
    assert all(means[f"precision@{k}"] == 1.0 for k in ("0.5", "0.6", "0.7", "0.8", "0.9"))
    assert means["n"] == len(samples) and means["n_empty_target"] == 0
    assert [row["id"] for row in result.per_sample] == [s.id for s in samples]
    assert [row["text"] for row in result.per_sample] == [s.text for s in samples]
    assert result.settings["text_variant"] == "full" and result.settings["image_size"] == list(SIZE)


def test_metrics_are_at_the_original_mask_resolution(fake_model, samples):
    result = _evaluate(fake_model, samples, image_size=(24, 24), progress=False)
    assert all(row["target_pixels"] == 64 for row in result.per_sample)  # 8x8 squares in the 40x48 masks
    assert all(row["union"] >= 64 for row in result.per_sample)
    assert 0.6 < result.means["dice"] < 1.0  # resampling blurs the edges a little


def test_batch_size_does_not_change_results(fake_model, samples):
    one = _evaluate(fake_model, samples, image_size=(24, 24), batch_size=1, progress=False)
    four = _evaluate(fake_model, samples, image_size=(24, 24), batch_size=4, progress=False)
    assert one.per_sample == four.per_sample


def test_shuffled_text_breaks_exactly_the_mismatched_samples(fake_model, samples):
    result = _evaluate(fake_model, samples, image_size=SIZE, text_variant="shuffled", seed=5, progress=False)
    order = derangement(len(samples), 5)
    same_side = [source % 2 == i % 2 for i, source in enumerate(order)]
    assert [row["dice"] for row in result.per_sample] == [1.0 if same else 0.0 for same in same_side]
    assert fake_model.sentences_seen == apply_text_variant(samples, "shuffled", 5)
    assert result.settings["n_shuffled_text_unchanged"] == sum(same_side)
    again = _evaluate(fake_model, samples, image_size=SIZE, text_variant="shuffled", seed=5, progress=False)
    assert again.per_sample == result.per_sample


def test_none_feeds_empty_strings_and_text_free_models_get_no_text(fake_model, samples):
    # Without a side the fake model segments both squares: Dice 2*64/(128+64), IoU 64/128.
    result = _evaluate(fake_model, samples, image_size=SIZE, text_variant="none", progress=False)
    assert set(fake_model.sentences_seen) == {""}
    assert result.means["dice"] == pytest.approx(2 / 3) and result.means["miou"] == pytest.approx(0.5)
    image_only = _evaluate(FakeImageOnlyModel(), samples, image_size=SIZE, progress=False)
    assert image_only.means["dice"] == pytest.approx(2 / 3)
    assert all(row["text"] is None for row in image_only.per_sample)
    assert image_only.settings["uses_text"] is False


def test_empty_ground_truth_is_counted(fake_model, tmp_path):
    samples = write_samples(tmp_path / "d", n=2, size=SIZE)
    # Nothing to find in sample 1, but the model finds its square.
    Image.fromarray(np.zeros(SIZE, dtype=np.uint8)).save(samples[1].mask)
    result = _evaluate(fake_model, samples, image_size=SIZE, progress=False)
    assert [row["dice"] for row in result.per_sample] == [1.0, 0.0]
    assert result.means["n_empty_target"] == 1 and result.means["n_empty_target_with_pred"] == 1


def test_model_mode_is_restored_and_inference_runs_in_eval_mode(fake_model, samples):
    fake_model.train()
    _evaluate(fake_model, samples, image_size=SIZE, progress=False)
    assert fake_model.training and fake_model.modes_seen and not any(fake_model.modes_seen)
    assert all(p.grad is None for p in fake_model.parameters())


def test_summary_json_and_markdown(fake_model, samples, tmp_path):
    result = _evaluate(fake_model, samples, image_size=SIZE, progress=False)
    path = result.to_json(tmp_path / "out" / "summary.json")
    payload = json.loads(path.read_text())
    assert set(payload) == {"settings", "means", "per_sample"}
    assert payload["means"]["dice"] == 1.0 and len(payload["per_sample"]) == len(samples)
    assert {"text_variant", "threshold", "seed", "date", "image_size"} <= set(payload["settings"])
    table = result.markdown_table().splitlines()
    assert len(table) == 3 and table[0].startswith("| text | n | Dice (%) | mIoU (%) | oIoU (%) | P@0.5 (%)")
    assert table[2].startswith(f"| full | {len(samples)} | 100.00 | 100.00 | 100.00 |")
    assert table[0].endswith("| P@0.9 (%) | pooled Dice (%) |") and table[2].endswith("| 100.00 |")
    assert payload["means"]["pooled_dice"] == 1.0


def test_bad_settings_raise(fake_model, samples):
    with pytest.raises(ConfigError, match="threshold"):
        _evaluate(fake_model, samples, image_size=SIZE, threshold=1.5, progress=False)
    with pytest.raises(ConfigError, match="text variant"):
        _evaluate(fake_model, samples, image_size=SIZE, text_variant="most", progress=False)
    with pytest.raises(DataError, match="no samples"):
        _evaluate(fake_model, [], image_size=SIZE, progress=False)


def test_threshold_is_applied_to_probabilities(fake_model, samples):
    # Bright pixels have logit +10 (p ~ 0.99995): a threshold above that predicts nothing.
    with torch.no_grad():
        fake_model.conv.bias.fill_(-19.0)  # bright pixels -> logit +1 (p ~ 0.73)
    assert _evaluate(fake_model, samples, image_size=SIZE, threshold=0.7, progress=False).means["dice"] == 1.0
    assert (
        _evaluate(fake_model, samples, image_size=SIZE, threshold=0.75, progress=False).means["dice"] == 0.0
    )
