"""The one error of bad simulation input: the command line prints it as one line, exit 2."""

from __future__ import annotations


class InputError(ValueError):
    """Bad input to a simulation, found before any work starts; the message names it."""


__all__ = ["InputError"]
