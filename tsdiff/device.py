"""Where the network runs: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.

Only the network's arithmetic moves. Data stay in CPU memory and travel one batch at a
time, and every random draw (training masks, diffusion steps and noise, the sampler's
per-window noise) comes from CPU ``torch.Generator``s, so a seed gives the same samples
on any device, up to the device's floating-point rounding.
"""

from __future__ import annotations

import torch

from tsdiff.errors import ConfigError

DEVICE_CHOICES = ("auto", "cpu", "cuda")  # what the CLI offers; "cuda:N" is also accepted


class DeviceError(ConfigError):
    """The device named cannot be used on this machine (or is not a device at all)."""


def resolve_device(name: str | torch.device | None = "auto") -> torch.device:
    """A usable ``torch.device`` for ``name``; ``auto`` (or None) picks CUDA when present."""
    if isinstance(name, torch.device):
        name = str(name)
    text = "auto" if name is None else str(name).strip().lower()
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if text == "cpu":
        return torch.device("cpu")
    if text == "cuda" or text.startswith("cuda:"):
        index = text.partition(":")[2]
        if index and not index.isdigit():
            raise DeviceError(f"device {name!r}: the CUDA index must be a whole number")
        if not torch.cuda.is_available():
            raise DeviceError(
                f"device {name!r} asked for, but this machine has no usable CUDA GPU "
                "(torch was built without CUDA or no GPU is visible); use cpu or auto"
            )
        if index and int(index) >= torch.cuda.device_count():
            raise DeviceError(
                f"device {name!r}: only {torch.cuda.device_count()} CUDA device(s) visible"
            )
        return torch.device(text)
    raise DeviceError(f"unknown device {name!r}: use auto, cpu, cuda or cuda:N")


def module_device(module: torch.nn.Module) -> torch.device:
    """The device of a module's parameters (CPU for a module without any)."""
    first = next(module.parameters(), None)
    return first.device if first is not None else torch.device("cpu")
