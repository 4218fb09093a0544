"""Names inside a job's folder, shared by the agent and the (lean) worker process."""

SPEC, LOG, RESULTS, WORKER_ERR = "spec.json", "log.txt", "results", "worker.err"
# A finished attempt's summary, on disk before the worker says it is done: an agent killed
# between the two records the job done on restart instead of running it again.
OUTCOME = "outcome.json"
WORKER_MODULE = "agent.jobs.worker"
PERMANENT_EXIT = 3  # the worker's exit status for "failed, do not retry"
