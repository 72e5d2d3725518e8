"""RQ jobs, the dispatcher that schedules them, and the worker entry point."""
