"""Field checks of :class:`jaxvae.Config`: each raises :class:`ConfigError` naming the field.

``config`` is any object with the named attribute; the functions return None.
"""

from __future__ import annotations

import math

__all__ = ["ConfigError", "is_int", "integer", "optional_int", "real", "flag", "choice"]


class ConfigError(ValueError):
    """A configuration value that cannot be used; the message names the field.

    ``field`` is the offending field's name when there is one (the command line uses it to
    name the flag instead).
    """

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


def is_int(value) -> bool:
    """True for an int that is not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)


def integer(config, name, minimum):
    """``config.name`` is an int >= ``minimum``."""
    value = getattr(config, name)
    if not is_int(value):
        raise ConfigError(f"{name} must be an integer, got {value!r}", name)
    if value < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {value}", name)


def optional_int(config, name, minimum):
    """``config.name`` is None or an int >= ``minimum``."""
    if getattr(config, name) is not None:
        integer(config, name, minimum)


def real(config, name, minimum, strict=False):
    """``config.name`` is a finite number >= ``minimum`` (> with ``strict``)."""
    value = getattr(config, name)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{name} must be a finite number, got {value!r}", name)
    if value < minimum or (strict and value == minimum):
        raise ConfigError(f"{name} must be {'>' if strict else '>='} {minimum}, got {value}", name)


def flag(config, name):
    """``config.name`` is a bool."""
    if not isinstance(getattr(config, name), bool):
        raise ConfigError(f"{name} must be true or false, got {getattr(config, name)!r}", name)


def choice(config, name, allowed):
    """``config.name`` is one of ``allowed``."""
    value = getattr(config, name)
    if value not in allowed:
        raise ConfigError(f"unknown {name} {value!r}; expected one of {', '.join(allowed)}",
                          name)
