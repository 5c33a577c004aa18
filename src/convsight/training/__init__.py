"""Training for every model in convsight: :class:`Trainer`, its :class:`TrainConfig`, checkpoints and DDP."""

from convsight.training.batches import move_to
from convsight.training.checkpoint import Checkpoint, export_weights, load_checkpoint, save_checkpoint
from convsight.training.config import TrainConfig, build_optimizer, build_scheduler
from convsight.training.losses import classification_loss, classification_step
from convsight.training.trainer import NonFiniteLossError, Trainer, TrainResult

__all__ = [
    "Checkpoint",
    "NonFiniteLossError",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "build_optimizer",
    "build_scheduler",
    "classification_loss",
    "classification_step",
    "export_weights",
    "load_checkpoint",
    "move_to",
    "save_checkpoint",
]
