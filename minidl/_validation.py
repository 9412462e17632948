"""The former name of :mod:`minidl.validation` (private before issue 8); kept so that
custom layers written against it keep working."""

from .validation import *  # noqa: F403
from .validation import __all__  # noqa: F401
