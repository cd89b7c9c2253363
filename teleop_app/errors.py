"""Errors the operator sees: one line that says why and what to do."""

from __future__ import annotations


class OperatorError(RuntimeError):
    """An operator action that cannot be done now; the message says why and what to do."""


def one_line(exc: BaseException) -> str:
    """An exception as one line for the user: our own messages as they are, others with their type."""
    from drivers.registry import ConfigError
    from policies.base import PolicyError
    from policies.loading import PolicyLoadError

    text = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    first = lines[0] if lines else ""
    if isinstance(exc, (PolicyLoadError, PolicyError, ConfigError, OperatorError, ValueError, KeyError)) and first:
        return first
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__
