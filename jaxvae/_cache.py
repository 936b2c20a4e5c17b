"""A bounded cache of compiled functions, keyed by (model, settings).

Compiled functions are kept so that repeated calls with new parameters or data reuse the
compilation; the cache holds at most ``maxsize`` entries (least recently used evicted),
so a long program that builds many models does not keep every executable alive.
Unhashable keys (a model holding arrays) are never cached.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any

__all__ = ["CompileCache"]


class CompileCache:
    """``get(key, build)``: the cached value for ``key``, else ``build()`` stored under it."""

    def __init__(self, maxsize: int = 32):
        self.maxsize = maxsize
        self._items: OrderedDict = OrderedDict()

    def get(self, key: Any, build: Callable[[], Any]) -> Any:
        """Args: ``key`` (hashable to be cached), ``build()``. Returns: the cached value."""
        try:
            value = self._items.pop(key)
        except KeyError:
            value = build()
        except TypeError:          # unhashable key
            return build()
        self._items[key] = value
        while len(self._items) > self.maxsize:
            self._items.popitem(last=False)
        return value

    def clear(self) -> None:
        """Drops every cached entry; returns None."""
        self._items.clear()

    def __len__(self) -> int:
        return len(self._items)
