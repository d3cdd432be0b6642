"""``lsms train --config FILE [key=value ...] [--resume [RUN_DIR]]``."""

from __future__ import annotations

import argparse
from pathlib import Path

from lsms.errors import ConfigError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a model from a YAML config",
        description="Train a model from a YAML config (see docs/training.md). Dotted key=value overrides "
        "replace config values, e.g. optim.lr=1e-4 data.image_size=[64,64]. Several processes: "
        "torchrun --nproc_per_node=N -m lsms.cli train ...",
    )
    parser.add_argument("--config", type=Path, help="YAML config file (optional with --resume RUN_DIR)")
    parser.add_argument(
        "--resume",
        nargs="?",
        const="",
        default=None,
        metavar="RUN_DIR",
        help="continue a run from its latest checkpoint: RUN_DIR, or train.run_dir of the config",
    )
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from lsms.training.config import load_config
    from lsms.training.trainer import CONFIG_FILE, train

    overrides = list(args.overrides)
    resume_dir = args.resume
    if resume_dir and "=" in resume_dir and not Path(resume_dir).is_dir():
        # argparse hands `--resume key=value` the first override; a bare --resume was meant.
        overrides.insert(0, resume_dir)
        resume_dir = ""
    config_path = args.config
    if resume_dir:
        overrides.append(f"train.run_dir={resume_dir}")
        if config_path is None:
            config_path = Path(resume_dir) / CONFIG_FILE
    if config_path is None:
        raise ConfigError("--config: a YAML config file is required (or --resume RUN_DIR)")
    config = load_config(config_path, overrides)
    run_dir = train(config, resume=resume_dir is not None)
    print(f"run folder: {run_dir}")
    return 0
