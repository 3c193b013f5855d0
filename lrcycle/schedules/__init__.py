"""Schedules: the pure shapes (`shapes`), the schedule value and its builders (`schedule`), the fit forms that
turn a call into a schedule (`forms`), the torch LR-scheduler adapter (`torch_scheduler`) and `preview`.

`lrcycle.schedules` itself offers the torch-free part: the shapes, `Schedule`, `join` and the builders.
"""

from . import schedule, shapes
from .schedule import *  # noqa: F403  (each module lists its public names in __all__)
from .shapes import *  # noqa: F403

__all__ = [*schedule.__all__, *shapes.__all__]
