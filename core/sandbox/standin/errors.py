"""Stream's error answers: the status, Stream's own error code, and its JSON body."""

from __future__ import annotations

from slashbots.sandbox.standin.values import Json

# Stream's error codes for the statuses the stand-in answers (api_errors_response).
ERROR_CODES = {400: 4, 401: 5, 403: 17, 404: 16, 429: 9}
TOO_MANY_REQUESTS = "Too many requests, check response headers for more info."


class StreamError(Exception):
    """An error answered in Stream's JSON shape: {code, message, StatusCode, duration, more_info}."""

    def __init__(self, status: int, message: str, *, code: int | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.code = code if code is not None else ERROR_CODES.get(status, -1)
        self.headers = headers or {}

    def body(self, operation: str) -> Json:
        """The body without `duration`, which the request pipeline adds to every answer."""
        return {
            "code": self.code,
            "message": f'{operation} failed with error: "{self}"',
            "StatusCode": self.status,
            "more_info": "https://getstream.io/chat/docs/api_errors_response",
        }


def bad_input(message: str) -> StreamError:
    return StreamError(400, message)


def not_found(message: str) -> StreamError:
    return StreamError(404, message)
