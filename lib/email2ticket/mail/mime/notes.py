"""Defect notes: every problem met while parsing, as a short sentence instead of an exception.

A torture message can produce thousands of identical defects, so the collection is de-duplicated and capped.
"""

from .text import clean

MAX_DEFECT_NOTES = 100
"""A torture message can produce thousands of identical defects; keep the list readable."""


class Notes:
    """Ordered, de-duplicated, capped collection of defect notes."""

    def __init__(self) -> None:
        self._notes: dict[str, None] = {}
        self._dropped = 0

    def add(self, note: str) -> None:
        note = clean(note)
        if note in self._notes:
            return
        if len(self._notes) >= MAX_DEFECT_NOTES:
            self._dropped += 1
            return
        self._notes[note] = None

    def freeze(self) -> tuple[str, ...]:
        notes = tuple(self._notes)
        if self._dropped:
            notes += (f"... {self._dropped} more defect notes omitted",)
        return notes
