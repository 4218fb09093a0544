"""Errors the agent raises on purpose. Anything else reaching the API is a bug (5xx)."""


class Error(Exception):
    """Base of every error the agent raises knowingly."""


class ApiError(Error):
    """A refusal the API turns into a 4xx answer with a JSON body."""

    def __init__(
        self, status: int, error: str, message: str, hint: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message
        self.hint = hint
        self.headers = headers or {}
