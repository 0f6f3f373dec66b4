"""Typed exceptions. Every error a user can cause is a :class:`UvrsepError` whose message is one
line naming the file (when there is one) and what to do about it; the CLI prints it without a
traceback."""

from __future__ import annotations


class UvrsepError(Exception):
    """Base class of every error uvrsep reports to a user."""


class ParamsError(UvrsepError):
    """A model-params JSON is missing, malformed, or has an invalid field."""


class ModelError(UvrsepError):
    """A model file cannot be loaded, or its state dict matches no known architecture."""


class AudioError(UvrsepError):
    """An input cannot be decoded, or an output cannot be written."""


class SettingsError(UvrsepError):
    """An inference setting (window size, aggressiveness, split bin, ...) is out of range."""
