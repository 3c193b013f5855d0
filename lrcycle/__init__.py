"""lrcycle: learning-rate range tests and cyclical schedules for PyTorch, fastai-style."""

__version__ = "0.1.0"

from . import batches, schedules
from .batches import MSELossFlat
from .callback import (
    EVENTS,
    Callback,
    CancelBatchException,
    CancelEpochException,
    CancelFitException,
    CancelStepException,
    CancelTrainException,
    CancelValidException,
    NonFiniteLossWarning,
)
from .callbacks.accumulate import GradientAccumulation
from .callbacks.averaging import CycleAverage
from .callbacks.checkpointing import Checkpoint
from .callbacks.early_stopping import EarlyStoppingCallback, TerminateOnNaNCallback
from .callbacks.gradient_clip import GradientClip
from .callbacks.loggers import CSVLogger, TensorBoardCallback
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
from .data import DataLoaders
from .demo import digits
from .demo.models import digits_cnn, digits_mlp
from .distributed import is_main_process
from .finder import suggest
from .integrations.plain import range_test
from .layers import resnet_splitter, sequential_head_splitter, sequential_splitter
from .learner import Learner
from .metrics import accuracy, accuracy_multi, error_rate
from .plots import NothingToPlotWarning, plot_schedule
from .recorder import Recorder
from .schedules import forms as plans  # the fit forms' old module name
from .schedules.torch_scheduler import scheduler
from .transfer import transfer_learner
from .validate import spread

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
    "MSELossFlat",
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
    "accuracy_multi",
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
