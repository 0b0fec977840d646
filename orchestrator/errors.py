"""The service layer's errors; the API maps each to an HTTP status (problem+json)."""

from __future__ import annotations


class ServiceError(Exception):
    """A request the control plane refuses, with a message a person can act on."""

    status = 400
    title = "Bad request"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class NotFound(ServiceError):
    status = 404
    title = "Not found"


class Conflict(ServiceError):
    status = 409
    title = "Conflict"


class Invalid(ServiceError):
    status = 422
    title = "Invalid request"


class TooLarge(ServiceError):
    status = 413
    title = "Content too large"


class Unauthorized(ServiceError):
    status = 401
    title = "Unauthorized"


class Forbidden(ServiceError):
    status = 403
    title = "Forbidden"


class TooManyRequests(ServiceError):
    status = 429
    title = "Too many requests"

    def __init__(self, message: str, *, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class InsufficientStorage(ServiceError):
    """The volume under the artifact store is full: nothing of the request was kept."""

    status = 507
    title = "Insufficient storage"
