"""Plan a training run before paying for it: memory per GPU per layout, FLOPs, days, cost, tokens.

``gptlab plan`` (see :mod:`gptlab.plan.command`) is the command; :func:`make_plan` the library
entry point. Nothing here builds a model or touches a device: a 540B plan runs on a laptop.
"""
from __future__ import annotations

from gptlab.plan.gpus import GPUS, Accelerator, find_gpu
from gptlab.plan.planner import Inputs, Plan, make_plan, render
from gptlab.plan.shape import Shape, shape_from_config

__all__ = ["GPUS", "Accelerator", "Inputs", "Plan", "Shape", "find_gpu", "make_plan", "render", "shape_from_config"]
