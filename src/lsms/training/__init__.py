"""Training: YAML configs, the trainer (exact resume, DDP) and the frozen-text feature cache."""

from lsms.training.config import Config, load_config
from lsms.training.trainer import train

__all__ = ["Config", "load_config", "train"]
