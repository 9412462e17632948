"""Stateful layers: validate the input, call a kernel, keep what backward needs."""

from .activation import ReLU
from .base import Layer
from .batchnorm import BatchNorm1D, BatchNorm2D
from .conv import Conv2D
from .dense import Dense, Flatten
from .dropout import Dropout, Dropout2D
from .merge import Add, Concat
from .pool import MaxPool2D

__all__ = ["Layer", "Conv2D", "ReLU", "MaxPool2D", "Dense", "Flatten", "Add", "Concat",
           "BatchNorm1D", "BatchNorm2D", "Dropout", "Dropout2D"]
