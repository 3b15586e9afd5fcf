"""Exceptions with messages meant for the user (one clear line each)."""


class SamphaseError(Exception):
    """Base class for errors the CLI and the widget show to the user as-is."""


class InputError(SamphaseError, ValueError):
    """An image, label image or parameter that cannot be used."""


class CheckpointError(SamphaseError):
    """A model checkpoint that is missing, corrupted or cannot be downloaded."""
