"""lrcycle: learning-rate range tests and cyclical schedules for PyTorch, fastai-style."""

__version__ = "0.1.0"

from . import batches, plans, schedules, suggest
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
from .callbacks.accumulate import GradientAccumulation
from .callbacks.averaging import CycleAverage
from .callbacks.checkpointing import Checkpoint
from .callbacks.early_stopping import EarlyStoppingCallback, TerminateOnNaNCallback
from .callbacks.gradient_clip import GradientClip
from .callbacks.loggers import CSVLogger, TensorBoardCallback
from .callbacks.loss_check import NonFiniteLossWarning
from .callbacks.lr_finder import LRFinderCallback
from .callbacks.mixed_precision import MixedPrecision
from .callbacks.param_scheduler import ParamScheduler
from .callbacks.progress import ProgressCallback
from .callbacks.schedulers import (
    CircularLRBetaCallback,
    CircularLRCallback,
    CyclicLRCallback,
    FlatCosCallback,
    OneCycleCallback,
    SGDRCallback,
    WSDCallback,
)
from .callbacks.tracking import CycleSnapshotCallback, SaveModelCallback, TrackerCallback
from .checks import spread
from .data import DataLoaders, digits
from .distributed import is_main_process
from .layers import resnet_splitter, sequential_head_splitter, sequential_splitter
from .learner import Learner
from .metrics import accuracy, error_rate
from .models import digits_cnn, digits_mlp
from .plots import NothingToPlotWarning, plot_schedule
from .range_test import range_test
from .recorder import Recorder
from .scheduler import scheduler
from .transfer import transfer_learner

__all__ = [
    "CSVLogger",
    "CircularLRBetaCallback",
    "CircularLRCallback",
    "CyclicLRCallback",
    "EVENTS",
    "Callback",
    "CancelBatchException",
    "CancelEpochException",
    "CancelFitException",
    "CancelStepException",
    "CancelTrainException",
    "CancelValidException",
    "Checkpoint",
    "CycleAverage",
    "CycleSnapshotCallback",
    "DataLoaders",
    "EarlyStoppingCallback",
    "FlatCosCallback",
    "GradientAccumulation",
    "GradientClip",
    "LRFinderCallback",
    "Learner",
    "MixedPrecision",
    "NonFiniteLossWarning",
    "NothingToPlotWarning",
    "OneCycleCallback",
    "ParamScheduler",
    "ProgressCallback",
    "Recorder",
    "SGDRCallback",
    "SaveModelCallback",
    "TensorBoardCallback",
    "TerminateOnNaNCallback",
    "TrackerCallback",
    "WSDCallback",
    "accuracy",
    "batches",
    "digits",
    "digits_cnn",
    "digits_mlp",
    "error_rate",
    "is_main_process",
    "plot_schedule",
    "resnet_splitter",
    "plans",
    "range_test",
    "scheduler",
    "schedules",
    "sequential_head_splitter",
    "sequential_splitter",
    "spread",
    "suggest",
    "transfer_learner",
]
