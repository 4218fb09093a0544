"""The kit's durable job queue: jobs and schedules in SQLite, each job run in a child process.

Layout: `queue.py` (rows and their state changes), `admission.py` (what may start now),
`schedules.py` (cron), `runner.py` + `process.py` (the loop and the child processes),
`prepare.py` (checks at submit and at start), `files.py` (logs, results, retention),
`worker.py` + `kinds/` (what runs inside the child), `service.py` (the facade the API uses).
"""

from agent.jobs.errors import Error, PermanentFailure

__all__ = ["Error", "PermanentFailure"]
