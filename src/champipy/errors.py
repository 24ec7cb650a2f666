"""Typed errors raised by the services; the API maps each to one HTTP status in one place."""

from __future__ import annotations


class ChampipyError(Exception):
    """Base class: ``code`` is the machine-readable error, the message is for people."""

    code = "error"
    status = 400

    def __init__(self, detail: str):
        super().__init__(detail)
        self.detail = detail


class InvalidInput(ChampipyError):
    code, status = "invalid_input", 422


class BadUrl(ChampipyError):
    code, status = "bad_url", 400


class AddressNotAllowed(ChampipyError):
    code, status = "address_not_allowed", 403


class RemoteNotFound(ChampipyError):
    code, status = "remote_not_found", 404


class TooLarge(ChampipyError):
    code, status = "too_large", 413


class NotAnImage(ChampipyError):
    code, status = "not_an_image", 415


class UnsupportedImageShape(ChampipyError):
    code, status = "unsupported_image_shape", 422


class RemoteFailed(ChampipyError):
    code, status = "remote_failed", 502


class RemoteTimeout(ChampipyError):
    code, status = "remote_timeout", 504


class NotFound(ChampipyError):
    code, status = "not_found", 404


class Conflict(ChampipyError):
    code, status = "conflict", 409


class Unauthorized(ChampipyError):
    code, status = "unauthorized", 401


class Forbidden(ChampipyError):
    code, status = "forbidden", 403


class RetryLater(ChampipyError):
    """Refused for now; the answer carries Retry-After."""

    def __init__(self, detail: str, retry_after: int = 60):
        super().__init__(detail)
        self.retry_after = retry_after


class TooManyAttempts(RetryLater):
    code, status = "too_many_attempts", 429


class QuotaExceeded(RetryLater):
    code, status = "quota_exceeded", 429


class TooManyFetches(RetryLater):
    code, status = "too_many_fetches", 429


class Busy(RetryLater):
    code, status = "busy", 503


class NoModel(ChampipyError):
    code, status = "no_model", 503


class StoreUnavailable(ChampipyError):
    code, status = "database_unavailable", 503


class ModelLoadFailed(ChampipyError):
    code, status = "model_load_failed", 500


class QueueUnavailable(ChampipyError):
    code, status = "queue_unavailable", 503
