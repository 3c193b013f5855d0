"""lrcycle: learning-rate range tests and cyclical schedules for PyTorch, fastai-style."""

__version__ = "0.1.0"

from .callback import (
    EVENTS,
    Callback,
    CancelBatchException,
    CancelEpochException,
    CancelFitException,
    CancelStepException,
    CancelTrainException,
    CancelValidException,
)
from .callbacks.progress import ProgressCallback
from .data import DataLoaders, digits
from .layers import sequential_splitter, spread
from .learner import Learner
from .metrics import accuracy, error_rate
from .models import digits_cnn, digits_mlp
from .recorder import Recorder

__all__ = [
    "EVENTS",
    "Callback",
    "CancelBatchException",
    "CancelEpochException",
    "CancelFitException",
    "CancelStepException",
    "CancelTrainException",
    "CancelValidException",
    "DataLoaders",
    "Learner",
    "ProgressCallback",
    "Recorder",
    "accuracy",
    "digits",
    "digits_cnn",
    "digits_mlp",
    "error_rate",
    "sequential_splitter",
    "spread",
]
