"""The errors of jaxvae.data: :class:`DataError` and :class:`MissingDependencyError`.

Every problem with a data set name, a split or a file's contents raises :class:`DataError`,
a ``ValueError``. They live in this small module so that every data module can import them
without import cycles; :mod:`jaxvae.data.registry` and :mod:`jaxvae.data` re-export them.
"""

__all__ = ["DataError", "MissingDependencyError"]


class DataError(ValueError):
    """A bad data set name or split, a missing or malformed file, or invalid values."""


class MissingDependencyError(DataError, ImportError):
    """An optional package needed for this data source is not installed."""
