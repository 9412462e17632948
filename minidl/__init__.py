"""minidl: a small deep-learning framework on numpy with hand-derived backprop.

>>> import minidl as mdl
>>> from minidl import layers, losses
"""

from . import callbacks, data, export, functional, interop, layers, losses, models, optim, plot, validation
from . import datasets as datasets  # mdl.datasets and mdl.transforms keep working (their code: minidl.data)
from . import transforms as transforms
from .callbacks import EarlyStopping, LearningRateScheduler, ModelCheckpoint, NormHistory
from .grad_mode import enable_grad
from .gradcheck import GradcheckReport, gradcheck
from .graph import Graph, Sequential
from .io import load, register_layer, save
from .layer_contract import ContractReport, check_layer
from .layers._init import manual_seed
from .modelcheck import ModelCheck, check_model
from .parameter import Parameter
from .threads import get_num_threads, set_num_threads
from .train import History, Trainer

__version__ = "0.1.0"

__all__ = [
    "Parameter", "Graph", "Sequential", "Trainer", "History", "gradcheck", "GradcheckReport", "enable_grad",
    "check_model", "ModelCheck", "check_layer", "ContractReport",
    "load", "save", "register_layer", "set_num_threads", "get_num_threads",
    "EarlyStopping", "ModelCheckpoint", "LearningRateScheduler", "NormHistory",
    "callbacks", "data", "export", "functional", "interop", "layers", "losses", "models", "optim", "plot", "validation",
    "__version__", "manual_seed",
]
