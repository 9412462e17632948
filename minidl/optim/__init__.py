"""Optimizers and learning-rate schedules, matching :mod:`torch.optim`.

* :class:`Optimizer` (parameter groups, state, the all-or-nothing step, ``maximize``),
  :class:`SGD`, :class:`Adam`, :class:`AdamW`, :class:`RMSprop`, :class:`NAdam`,
  :class:`RAdam`, :class:`Adagrad`, :class:`Adamax`;
* schedules: :class:`StepLR`, :class:`MultiStepLR`, :class:`ExponentialLR`,
  :class:`LinearLR`, :class:`CosineAnnealingLR`, :class:`LambdaLR`,
  :class:`MultiplicativeLR`, :class:`ConstantLR`, :class:`PolynomialLR`,
  :class:`CosineAnnealingWarmRestarts` (stepped per epoch), :class:`OneCycleLR` and
  :class:`CyclicLR` (per batch), :class:`SequentialLR` and :class:`ChainedScheduler`
  (combine others), :class:`ReduceLROnPlateau` (per epoch, with the monitored metric);
* :func:`clip_grad_norm` and :func:`all_finite`.
"""

from .adagrad import Adagrad
from .adam import Adam, AdamW
from .adamax import Adamax
from .annealing import CosineAnnealingLR, LinearLR
from .clip import clip_grad_norm
from .compose import ChainedScheduler, SequentialLR
from .cyclic import CyclicLR
from .factor_lr import ConstantLR, PolynomialLR
from .lambda_lr import LambdaLR, MultiplicativeLR
from .lr_scheduler import ExponentialLR, LRScheduler, MultiStepLR, StepLR
from .nadam import NAdam
from .one_cycle import OneCycleLR
from .optimizer import Optimizer, all_finite
from .plateau import ReduceLROnPlateau
from .radam import RAdam
from .rmsprop import RMSprop
from .sgd import SGD
from .warm_restarts import CosineAnnealingWarmRestarts

__all__ = [
    "Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "Adamax", "RAdam", "NAdam",
    "LRScheduler", "StepLR", "MultiStepLR", "ExponentialLR", "LinearLR", "CosineAnnealingLR",
    "OneCycleLR", "ReduceLROnPlateau",
    "LambdaLR", "MultiplicativeLR", "ConstantLR", "PolynomialLR",
    "CosineAnnealingWarmRestarts", "CyclicLR", "SequentialLR", "ChainedScheduler",
    "clip_grad_norm", "all_finite",
]
