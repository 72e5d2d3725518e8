"""The one hook the worker calls after each committed batch.

This is the place where live dashboards and alerts are notified (the lead wires them here): the
batch carries the stored events and, in `batch.states`, the new public state of every order it
touched, so a dashboard can update its rows without another query. It runs in the worker loop
after the commit: keep it quick, and never let it raise (the loop logs and carries on if it does).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from app.services import Services
    from app.store import StoredBatch


def after_store(services: Services, batch: StoredBatch) -> None:
    """Notify live views of a committed batch; nothing is wired yet."""
    return None
