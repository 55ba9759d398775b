"""Provider-neutral errors, and the one translation from SDK exceptions into them.

Why: the retry policy must decide from facts (status, Retry-After, timeout or not), not
from which SDK raised; and what reaches logs and callers must never carry an API key.
The SDK exceptions hold the request (with its auth header) and the raw response body, so
they are translated here and the original is dropped (``from None``), keeping only a
short, redacted summary.
"""

import email.utils
import time
from collections.abc import Iterable, Mapping

import anthropic
import openai

_SNIPPET = 200


class ModelError(Exception):
    """Base of every error a model agent raises; its message is safe to log."""

    def __init__(self, message: str, *, provider: str, status: int | None = None) -> None:
        super().__init__(message)
        self.provider = provider
        self.status = status

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"


class ModelGaveUp(ModelError):
    """Retriable failures kept happening until the attempts (or patience) ran out."""

    def __init__(
        self, message: str, *, provider: str, attempts: int, reason: str, status: int | None
    ) -> None:
        super().__init__(message, provider=provider, status=status)
        self.attempts = attempts
        self.reason = reason


class ModelRejected(ModelError):
    """The server refused the request for good (400, 401, 403, 404, 422...): not retried."""


class ModelResponseError(ModelError):
    """The server answered 2xx but the body is not a usable answer (bad JSON, no choices)."""


class AttemptFailure(Exception):
    """One failed attempt, classified: what the retry policy decides from.

    ``reason`` is a metric label: rate_limited, server_error, timeout, connection_error,
    conflict, client_error or malformed.
    """

    def __init__(
        self,
        reason: str,
        retriable: bool,
        detail: str = "",
        *,
        status: int | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(detail or reason)
        self.reason = reason
        self.retriable = retriable
        self.detail = detail or reason
        self.status = status
        self.retry_after_s = retry_after_s


class HTTPStatusFailure(Exception):
    """A 4xx/5xx answer to a plain-HTTP call (no SDK in between); classified below."""

    def __init__(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        self.headers = dict(headers)
        self.body = body.decode("utf-8", "replace")


RETRIABLE_STATUS = frozenset({408, 409, 429})


def status_reason(status: int) -> str:
    """A metric-friendly name for an HTTP failure status."""
    if status == 429:
        return "rate_limited"
    if status == 408:
        return "timeout"
    if status == 409:
        return "conflict"
    if status >= 500:
        return "server_error"
    return "client_error"


def parse_retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds to wait from ``retry-after-ms``, or ``Retry-After`` as seconds or an HTTP date."""
    lower = {k.lower(): v for k, v in headers.items()}
    raw_ms = lower.get("retry-after-ms")
    if raw_ms is not None:
        try:
            return max(0.0, float(raw_ms) / 1000.0)
        except ValueError:
            pass
    raw = lower.get("retry-after")
    if raw is None:
        return None
    raw = raw.strip()
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def redact(text: str, secrets: Iterable[str]) -> str:
    """Replace every secret in ``text`` (and cut it short): servers sometimes echo keys."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    text = " ".join(text.split())
    return text if len(text) <= _SNIPPET else text[:_SNIPPET] + "..."


def _refused(exc: BaseException) -> bool:
    """A connection that failed at once, which the SDK's aiohttp transport reports as a
    connect *timeout* (its exception map turns aiohttp's ``ClientConnectorError`` into
    httpx's ``ConnectTimeout``): the metrics and messages should say what happened."""
    import aiohttp

    seen: BaseException | None = exc
    for _ in range(8):  # the cause chain: SDK error <- httpx error <- aiohttp error
        if seen is None:
            return False
        if isinstance(seen, aiohttp.ClientConnectorError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def status_failure(
    status: int, headers: Mapping[str, str], message: str | None, secrets: Iterable[str]
) -> AttemptFailure:
    """An HTTP error answer, whoever received it: retriable or not, the server's say
    (``x-should-retry``), how long it asks to wait, and its message without secrets."""
    retriable = status in RETRIABLE_STATUS or status >= 500
    if {k.lower(): v for k, v in headers.items()}.get("x-should-retry") == "false":
        retriable = False
    body = redact(message or "", secrets)
    return AttemptFailure(
        status_reason(status),
        retriable,
        f"HTTP {status}: {body}" if body else f"HTTP {status}",
        status=status,
        retry_after_s=parse_retry_after(headers) if status in (429, 503) else None,
    )


def classify_sdk_error(exc: BaseException, secrets: Iterable[str] = ()) -> AttemptFailure | None:
    """Translate an ``openai``/``anthropic`` exception; None if it is not one of theirs."""
    secrets = tuple(secrets)
    if isinstance(exc, openai.APITimeoutError | anthropic.APITimeoutError):
        if _refused(exc):
            return AttemptFailure("connection_error", True, "could not connect to the server")
        return AttemptFailure("timeout", True, "the request timed out")
    if isinstance(exc, openai.APIConnectionError | anthropic.APIConnectionError):
        return AttemptFailure("connection_error", True, "could not connect to the server")
    if isinstance(exc, openai.APIStatusError | anthropic.APIStatusError):
        headers = dict(exc.response.headers) if exc.response is not None else {}
        return status_failure(exc.status_code, headers, getattr(exc, "message", ""), secrets)
    if isinstance(exc, openai.APIResponseValidationError | anthropic.APIResponseValidationError):
        return AttemptFailure("malformed", False, "the response did not match the API schema")
    return None


def classify_http_error(exc: BaseException, secrets: Iterable[str] = ()) -> AttemptFailure | None:
    """Translate a failure of a plain-HTTP call (aiohttp, :class:`HTTPStatusFailure`) by
    the same rules as the SDK's (:func:`classify_sdk_error`, which it falls back to)."""
    import asyncio

    import aiohttp

    if isinstance(exc, HTTPStatusFailure):
        return status_failure(exc.status, exc.headers, exc.body, secrets)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return AttemptFailure("connection_error", True, "could not connect to the server")
    if isinstance(exc, asyncio.TimeoutError | aiohttp.ServerTimeoutError):
        return AttemptFailure("timeout", True, "the request timed out")
    if isinstance(exc, aiohttp.ClientError):  # reset, disconnected, broken payload
        return AttemptFailure("connection_error", True, "the connection to the server failed")
    return classify_sdk_error(exc, secrets)
