"""The RQ job each worker slot runs: the pipeline loop, heart-beating to RQ while it lives."""

from __future__ import annotations

from rq import SimpleWorker, get_current_job
from rq.defaults import DEFAULT_WORKER_TTL
from rq.utils import now

from app.services import get_services
from workers.pipeline import Pipeline

#: The RQ worker of this process (set by workers/worker.py), so the long job can keep it alive.
current_worker: SimpleWorker | None = None


def run_loop() -> int:
    """RQ job: the pipeline loop of this worker process, until it is asked to stop; returns events stored."""
    job = get_current_job()

    def heartbeat() -> None:
        """A SimpleWorker beats only between jobs; this job never ends by itself, so it beats for both."""
        if current_worker is not None:
            current_worker.heartbeat(DEFAULT_WORKER_TTL)
        if job is not None:
            job.heartbeat(now(), DEFAULT_WORKER_TTL)

    return Pipeline(get_services(), heartbeat=heartbeat).run()
