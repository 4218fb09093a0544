"""Names inside a job's folder, shared by the agent and the (lean) worker process."""

SPEC, LOG, RESULTS, WORKER_ERR = "spec.json", "log.txt", "results", "worker.err"
# A finished attempt's summary, on disk before the worker says it is done: an agent killed
# between the two records the job done on restart instead of running it again.
OUTCOME = "outcome.json"
WORKER_MODULE = "agent.jobs.worker"
PERMANENT_EXIT = 3  # the worker's exit status for "failed, do not retry"
SPARE_FLAG = "--spare"  # a worker started ahead of its job (spares.py)
HANDED_AT_ENV = "KITFLEET_HANDED_AT"  # time.monotonic() when the agent started a cold worker
# what numeric libraries size their thread pools from: held to what admission gave the job
THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
