"""Training: the LightningModule, objectives (standard, adversarial) and regularisers."""

from rxlit.training.module import RxLitModule, build_network
from rxlit.training.objectives import OBJECTIVES, build_objective
from rxlit.training.regularizers import REGULARIZERS, build_regularizer

__all__ = ["OBJECTIVES", "REGULARIZERS", "RxLitModule", "build_network", "build_objective", "build_regularizer"]
