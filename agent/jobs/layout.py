"""Names inside a job's folder, shared by the agent and the (lean) worker process."""

SPEC, LOG, RESULTS, WORKER_ERR = "spec.json", "log.txt", "results", "worker.err"
WORKER_MODULE = "agent.jobs.worker"
PERMANENT_EXIT = 3  # the worker's exit status for "failed, do not retry"
