"""ARM resource ids of scale sets and resource groups: the one parser, with ARM's naming rules per segment.

Names compare case-insensitively, as ARM's do ("Resource and resource group names are case-insensitive unless
specifically noted in the valid characters column... Always perform a case-insensitive comparison of names",
https://learn.microsoft.com/azure/azure-resource-manager/management/resource-name-rules). :attr:`ResourceId.key`
is the identity used everywhere a target is compared: deduplication, distinctness, leases, scope, the simulator.

Rules per segment (same page, and the GUID form of subscription ids):

- subscription: a GUID (``xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx``, hex digits).
- resource group: 1-90 characters; letters or digits, underscores, hyphens, periods and parentheses; it cannot
  end with a period. (ARM allows Unicode letters here; this parser keeps to ASCII so that look-alike letters,
  e.g. a Cyrillic ``а`` for ``a``, cannot name a second, different-looking group.)
- scale set: 1-64 characters (the Linux limit; Windows computer-name prefixes are shorter but the resource name
  is not); alphanumerics, underscores, periods and hyphens; starts with an alphanumeric; cannot end with a period
  or a hyphen.

So no dot-segments (``.``/``..``), no encoded separators (``%2F``), no ``?``/``#`` (the page: "#" interferes with
ARM's URL parsing), no control characters, no whitespace, and no trailing newline (``fullmatch``, never ``$``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_GUID = re.compile(r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}")
_RG = re.compile(r"[A-Za-z0-9_().-]{0,89}[A-Za-z0-9_()-]")
_VMSS = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,62}[A-Za-z0-9_])?")
_PROVIDER = "microsoft.compute"
_TYPE = "virtualmachinescalesets"
MAX_ID_LENGTH = 400


@dataclass(frozen=True)
class ResourceId:
    """A scale set's (or, with ``name`` empty, a resource group's) id, as written and as compared."""

    subscription: str
    resource_group: str
    name: str = ""

    @property
    def key(self) -> str:
        """The case-insensitive identity: two ids with equal keys name the same resource."""
        return str(self).casefold()

    @property
    def group_key(self) -> str:
        return f"/subscriptions/{self.subscription}/resourcegroups/{self.resource_group}".casefold()

    def __str__(self) -> str:
        rg = f"/subscriptions/{self.subscription}/resourceGroups/{self.resource_group}"
        return f"{rg}/providers/Microsoft.Compute/virtualMachineScaleSets/{self.name}" if self.name else rg


def _check_subscription(value: str) -> None:
    if not _GUID.fullmatch(value):
        raise ValueError(f"subscription {value!r} is not a subscription id (a GUID)")


def _check_group(value: str) -> None:
    if not _RG.fullmatch(value):
        raise ValueError(f"resource group {value!r} breaks ARM's naming rules (1-90 of letters, digits, _ - . ( ), "
                         "not ending with '.')")


def _segments(text: object, what: str) -> list[str]:
    if not isinstance(text, str):
        raise ValueError(f"{what}: expected a string (got {type(text).__name__})")
    if len(text) > MAX_ID_LENGTH:
        raise ValueError(f"{what}: {len(text)} characters; at most {MAX_ID_LENGTH}")
    if not text.startswith("/"):
        raise ValueError(f"{what} {text!r} must start with /subscriptions/")
    return text[1:].split("/")


def parse_scale_set_id(text: object) -> ResourceId:
    """The scale set a full resource id names, or ValueError saying which segment breaks which rule."""
    parts = _segments(text, "scale set id")
    shape = ("subscriptions", "resourcegroups", "providers", _PROVIDER, _TYPE)
    if len(parts) != 8 or tuple(parts[i].casefold() for i in (0, 2, 4, 5, 6)) != shape:
        raise ValueError(f"not a virtual machine scale set resource id: {text!r} (expected /subscriptions/<id>/"
                         "resourceGroups/<name>/providers/Microsoft.Compute/virtualMachineScaleSets/<name>)")
    sub, rg, name = parts[1], parts[3], parts[7]
    _check_subscription(sub)
    _check_group(rg)
    if not _VMSS.fullmatch(name):
        raise ValueError(f"scale set name {name!r} breaks ARM's naming rules (1-64 of letters, digits, _ . -, "
                         "starting with a letter or digit, not ending with '.' or '-')")
    return ResourceId(sub, rg, name)


def parse_group_id(text: object) -> ResourceId:
    """A resource group's id (``/subscriptions/<id>/resourceGroups/<name>``), or ValueError."""
    parts = _segments(text, "resource group id")
    if len(parts) != 4 or parts[0].casefold() != "subscriptions" or parts[2].casefold() != "resourcegroups":
        raise ValueError(f"not a resource group id (/subscriptions/<id>/resourceGroups/<name>): {text!r}")
    _check_subscription(parts[1])
    _check_group(parts[3])
    return ResourceId(parts[1], parts[3])


def check_subscription_id(text: object) -> str:
    if not isinstance(text, str):
        raise ValueError(f"subscription: expected a string (got {type(text).__name__})")
    _check_subscription(text)
    return text


def same_resource(a: str, b: str) -> bool:
    """Whether two resource ids name the same resource (ARM compares case-insensitively)."""
    return a.casefold() == b.casefold()


def resource_group_of(resource_id: str) -> str:
    """The resource group segment of any ARM resource id, or ValueError."""
    parts = _segments(resource_id, "resource id")
    for i, part in enumerate(parts[:-1]):
        if part.casefold() == "resourcegroups":
            _check_group(parts[i + 1])
            return parts[i + 1]
    raise ValueError(f"no resource group in resource id {resource_id!r}")
