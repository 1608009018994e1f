"""What a delivery to one destination gets and gives back (see deliver.py)."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pipelines.config import RadflowSettings
    from pipelines.gateway.night import NightExam
    from pipelines.pacs.client import OrthancClient


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What one destination holds for an exam after a send (or found unchanged).

    `content` identifies it (SOP Instance UIDs, message ids), never a patient.
    """

    content: dict[str, Any]
    superseded: list[str]  # earlier content the destination was told is replaced
    sent: bool  # False: it already held exactly this


@dataclasses.dataclass(frozen=True)
class Context:
    """One exam to one destination: the gateway, the settings, the result, the last row."""

    client: OrthancClient
    settings: RadflowSettings
    task: str
    exam: NightExam
    study_id: str  # the study's Orthanc id in the gateway
    previous: dict[str, Any] | None  # the destination's `deliveries` row, if any

    def already_sent(self, key: str, value: object) -> bool:
        """Whether the destination was sent exactly this (`content[key] == value`)."""
        prev = self.previous or {}
        return prev.get("status") == "sent" and (prev.get("content") or {}).get(key) == value

    def sent_before(self) -> bool:
        """Whether an earlier result of this exam reached the destination (a resend corrects it)."""
        return bool((self.previous or {}).get("sent_at"))
