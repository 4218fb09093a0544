"""Errors raised on purpose by the job queue and its workers."""

from agent.errors import Error as AgentError


class Error(AgentError):
    """Base of the job package's deliberate errors."""


class PermanentFailure(Error):
    """A job that cannot succeed by retrying (bad input, missing model): fail it now."""


class JobFailed(Error):
    """A job that failed in a way a retry may fix (a program exited non-zero, say)."""
