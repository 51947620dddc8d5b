"""The one place where Azure SDK errors become the project's errors (``shared.domain.errors``).

Every adapter call that reaches Azure runs inside :func:`azure_errors`; azure-core's retry policy has
already retried 429 and 5xx by then, so what arrives here is final.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from azure.core.exceptions import (
    AzureError,
    DecodeError,
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)

from ...domain.errors import (
    AzureOperationError,
    CapacityUnavailable,
    Conflict,
    NotFound,
    ShadowRolloutError,
    StaleWrite,
    Throttled,
    TransientError,
)

CAPACITY_CODES = frozenset({"SkuNotAvailable", "AllocationFailed", "ZonalAllocationFailed",
                            "OverconstrainedAllocationRequest", "OverconstrainedZonalAllocationRequest",
                            "SpotVMCapacityNotAvailable"})


def error_code(exc: HttpResponseError) -> str:
    """The service's error code: ARM's ``error.code``, or the ``x-ms-error-code`` the Tables SDK decodes."""
    err = getattr(exc, "error", None)
    code = getattr(err, "code", None) or getattr(exc, "error_code", None) or ""
    return str(getattr(code, "value", code))


def map_error(exc: AzureError, *, operation: str, resource: str = "") -> ShadowRolloutError:
    """The project's error for an Azure SDK error (the caller raises it ``from exc``)."""
    status = getattr(getattr(exc, "response", None), "status_code", None)
    code = error_code(exc) if isinstance(exc, HttpResponseError) else ""
    message = f"{operation} {resource}: {status or ''} {code} {_first_line(exc)}".replace("  ", " ").strip()
    cls: type[AzureOperationError]
    if code in CAPACITY_CODES:
        cls = CapacityUnavailable
    elif status == 412 or code in ("UpdateConditionNotSatisfied", "EntityAlreadyExists"):
        # If-Match failed, or an insert found the entity there: it changed since it was read. Codes:
        # https://learn.microsoft.com/rest/api/storageservices/table-service-error-codes
        cls = StaleWrite
    elif isinstance(exc, ResourceNotFoundError) or status == 404:
        cls = NotFound
    elif isinstance(exc, ResourceExistsError) or status == 409:
        cls = Conflict
    elif status == 429:
        cls = Throttled
    elif (status is not None and status >= 500) or isinstance(exc, ServiceRequestError | ServiceResponseError):
        cls = TransientError
    elif isinstance(exc, DecodeError):
        cls = TransientError  # a malformed answer: the operation's outcome is unknown, a retry may tell
        message = f"{operation} {resource}: malformed answer from Azure: {_first_line(exc)}"
    else:
        cls = AzureOperationError
    return cls(message, operation=operation, resource=resource, status=status)


@contextmanager
def azure_errors(operation: str, resource: str = "") -> Iterator[None]:
    """Map any Azure SDK error raised inside into the project's hierarchy, once."""
    try:
        yield
    except AzureError as exc:
        raise map_error(exc, operation=operation, resource=resource) from exc
    except (ValueError, KeyError, TypeError) as exc:  # the SDK's deserialisers on a malformed body
        raise TransientError(f"{operation} {resource}: malformed answer from Azure: {exc}", operation=operation,
                             resource=resource) from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__
