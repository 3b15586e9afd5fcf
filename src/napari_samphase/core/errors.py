"""Exceptions with messages meant for the user (one clear line each)."""


class SamphaseError(Exception):
    """Base class for errors the CLI and the widget show to the user as-is."""


class InputError(SamphaseError, ValueError):
    """An image, label image or parameter that cannot be used."""


class CheckpointError(SamphaseError):
    """A model checkpoint that is missing, corrupted or cannot be downloaded."""


def check_choice(value, choices, what: str):
    """``value`` if it is one of ``choices``; else one :class:`InputError` naming them."""
    if value not in choices:
        raise InputError(f"{what} must be one of {', '.join(choices)}, not {value!r}")
    return value
