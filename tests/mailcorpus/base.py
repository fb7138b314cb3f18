"""What each corpus builder returns."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class CorpusMessage:
    name: str
    client: str  # the mail client or server whose style the bytes follow
    exercises: str  # what the message tests, in a sentence
    raw: bytes
    # What the sender attached, in order: (file name as the sender saw it, exact bytes).
    files: list[tuple[str, bytes]] = field(default_factory=list)
