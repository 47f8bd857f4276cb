"""Paging of button lists: a page number from a callback is user input, so it is clamped, never trusted."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Page:
    number: int  # 0-based, always within 0..count-1
    count: int  # at least 1, even for an empty list
    size: int

    @property
    def offset(self) -> int:
        return self.number * self.size

    @property
    def has_prev(self) -> bool:
        return self.number > 0

    @property
    def has_next(self) -> bool:
        return self.number < self.count - 1


def page_of(requested: int, total: int, size: int) -> Page:
    if size < 1:
        raise ValueError("page size must be positive")
    count = max(1, -(-total // size))
    return Page(min(max(requested, 0), count - 1), count, size)
