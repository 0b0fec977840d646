"""The registry's one exception type."""

from __future__ import annotations


class ModelError(ValueError):
    """A problem with a model or a request about it, with a message a person can act on.

    The CLI prints it as one line (``error: <message>``) and exits with code 2.
    """
