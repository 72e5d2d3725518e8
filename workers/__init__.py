"""The worker process: the pipeline loop (store, forward, retry) run as RQ jobs, and the feeds."""
