"""Stateful layers: validate the input, call a kernel, keep what backward needs."""

from .activation import GELU, Identity, LeakyReLU, ReLU, Sigmoid, Softmax, Tanh
from .base import Layer
from .batchnorm import BatchNorm1D, BatchNorm2D
from .conv import Conv2D
from .dense import Dense, Flatten
from .dropout import Dropout, Dropout2D
from .merge import Add, Concat
from .pool import AvgPool2D, GlobalAvgPool2D, MaxPool2D

__all__ = ["Layer", "Conv2D", "ReLU", "LeakyReLU", "Sigmoid", "Tanh", "GELU", "Identity", "Softmax",
           "MaxPool2D", "AvgPool2D", "GlobalAvgPool2D", "Dense", "Flatten", "Add", "Concat",
           "BatchNorm1D", "BatchNorm2D", "Dropout", "Dropout2D"]
