"""Which torch device inference runs on: CUDA, then Apple's MPS, then the CPU, unless told otherwise."""

from __future__ import annotations

import re

import torch

DEVICE_CHOICES = ("auto", "cpu", "cuda", "cuda:N", "mps")


class DeviceError(ValueError):
    """A device that does not exist here or is not a device name; the message says which."""


def pick_device(name: str | None = "auto") -> torch.device:
    """``"auto"``/``None`` → the best device available; ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"`` → that one."""
    text = (name or "auto").strip().lower()
    if text == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if text == "cpu":
        return torch.device("cpu")
    if re.fullmatch(r"cuda(:\d+)?", text):
        if not torch.cuda.is_available():
            raise DeviceError(f"device {name!r}: CUDA is not available here (torch {torch.__version__}); "
                              "use --device cpu or auto")
        index = int(text.split(":")[1]) if ":" in text else 0
        if index >= torch.cuda.device_count():
            raise DeviceError(f"device {name!r}: only {torch.cuda.device_count()} CUDA device(s) here")
        return torch.device(text)
    if text == "mps":
        if getattr(torch.backends, "mps", None) is None or not torch.backends.mps.is_available():
            raise DeviceError(f"device {name!r}: Apple MPS is not available here; use --device cpu or auto")
        return torch.device("mps")
    raise DeviceError(f"device {name!r}: choose one of {', '.join(DEVICE_CHOICES)}")
