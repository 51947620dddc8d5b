"""The project's one error hierarchy.

Adapters map lower-level errors (Azure SDK, HTTP, YAML, pydantic) into these once, at the boundary,
and re-raise ``from exc``::

    ShadowRolloutError
    ├── InvalidInput            bad user input; nothing was changed
    │   ├── ScenarioError       a scenario file is malformed (names the key path)
    │   ├── PolicyError         a policy override is unknown or out of range
    │   └── RequestError        a rollout request is malformed
    ├── OutOfScope              a target lies outside the configured scope; nothing was changed
    ├── ConfigurationError      the app's own configuration (e.g. the intake mapping) is missing or invalid
    ├── AzureOperationError     an Azure (or simulated Azure) operation failed
    │   ├── Throttled           429 after the SDK's own retries
    │   ├── TransientError      5xx after the SDK's own retries
    │   ├── NotFound            404: the resource does not exist
    │   ├── Conflict            409: the resource is busy or in the wrong state
    │   │   └── StaleWrite      412: a row changed since it was read (optimistic concurrency)
    │   └── CapacityUnavailable Spot (or regular) capacity was refused
    ├── ModelError              the failure model cannot score (schema mismatch, missing file)
    └── PromotionConflict       another trainer moved the registry's ``promoted`` pointer first
"""

from __future__ import annotations


class ShadowRolloutError(Exception):
    """Base of every error this project raises on purpose."""


class InvalidInput(ShadowRolloutError):
    """Input was rejected before any action was taken."""


class ScenarioError(InvalidInput):
    """A scenario file is malformed; the message names the key and its path."""


class PolicyError(InvalidInput):
    """A rollout policy override is unknown or out of range."""


class RequestError(InvalidInput):
    """A rollout request is malformed."""


class OutOfScope(ShadowRolloutError):
    """A target lies outside the configured scope; no action was taken."""


class ConfigurationError(ShadowRolloutError):
    """The app's configuration is missing or invalid: the input is not at fault, so it is not rejected."""


class AzureOperationError(ShadowRolloutError):
    """An Azure operation failed after the transport's own retries."""

    def __init__(self, message: str, *, operation: str = "", resource: str = "", status: int | None = None):
        super().__init__(message)
        self.operation = operation
        self.resource = resource
        self.status = status


class Throttled(AzureOperationError):
    """ARM kept answering 429."""


class TransientError(AzureOperationError):
    """ARM kept answering 5xx."""


class NotFound(AzureOperationError):
    """The resource does not exist."""


class Conflict(AzureOperationError):
    """The resource is busy or in a state that refuses the operation."""


class StaleWrite(Conflict):
    """A stored row changed since it was read (an ETag mismatch, 412, or a row created meanwhile): read again."""


class CapacityUnavailable(AzureOperationError):
    """Capacity (usually Spot) was refused for a SKU."""


class ModelError(ShadowRolloutError):
    """The failure model cannot score this input."""


class PromotionConflict(ShadowRolloutError):
    """The registry's ``promoted`` pointer changed since it was read: another trainer promoted first."""
