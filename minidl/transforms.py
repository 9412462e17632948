"""Data augmentation, vectorised over the batch: the code lives in :mod:`minidl.data.transforms`."""

from .data.transforms import STREAM, Compose, RandomRotation, RandomShift, apply, rotate_images, shift_images

__all__ = ["Compose", "RandomShift", "RandomRotation", "shift_images", "rotate_images", "apply", "STREAM"]
