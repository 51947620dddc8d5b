"""Request bodies checked against the REST API definition, as the Compute resource provider checks them.

The definition is the installed azure-mgmt-compute's generated models (generated from the REST API specs of
the api-version the SDK sends): each field's wire name, whether it is read-only (``visibility == ["read"]``),
required (not optional) and, for enums, its values. What is refused, and how, follows ARM's error shape
(``{"error": {"code", "message", "target"}}``): an unknown member is ``InvalidRequestFormat``; a missing
required one, a read-only one set, or a value outside its enum is ``InvalidParameter`` naming the field.
"""

from __future__ import annotations

import enum
import functools
import re
from typing import Any, cast

from azure.mgmt.compute import models as m

_MODEL_REF = re.compile(r"_models\.(\w+)")
CLOSED_ENUMS = frozenset({"DiskCreateOptionTypes", "DiskCreateOption", "OperatingSystemTypes",
                          "VirtualMachinePriorityTypes", "VirtualMachineEvictionPolicyTypes", "SecurityTypes",
                          "DiskDeleteOptionTypes", "DeleteOptions", "OrchestrationMode", "NetworkAccessPolicy",
                          "PublicNetworkAccess", "CachingTypes", "UpgradeMode"})
"""Enums whose values the service checks. Most REST enums are extensible (``modelAsString``: vmSize lists a
few sizes but any size is a value); these name a fixed set of behaviours."""


class BodyRefused(Exception):
    def __init__(self, code: str, message: str, target: str) -> None:
        super().__init__(message)
        self.code, self.message, self.target = code, message, target


def _fields(cls: type) -> dict[str, tuple[str, Any]]:
    """Wire name -> (attribute, rest field) of a generated model."""
    if "_attr_to_rest_field" not in vars(cls):
        cast(Any, cls).__new__(cls)  # the SDK's model base computes the field table on first construction
    table: dict[str, Any] = getattr(cls, "_attr_to_rest_field", {})
    return {f._rest_name_input or attr: (attr, f) for attr, f in table.items()}


def _inner(fn: Any) -> tuple[str, type | None]:
    """What a field's deserializer makes: ('model', cls), ('list', cls|None), ('dict', None) or ('scalar', None)."""
    shape = "scalar"
    while isinstance(fn, functools.partial):
        name = getattr(fn.func, "__name__", "")
        if name == "_deserialize_sequence" and shape == "scalar":
            shape = "list"
        elif name == "_deserialize_dict" and shape == "scalar":
            return "dict", None
        elif name == "_deserialize_model":
            return ("list" if shape == "list" else "model"), fn.args[0]
        fn = fn.args[0] if fn.args else None
    return shape, None


@functools.cache
def _enum_of(cls: type, attr: str) -> type[enum.Enum] | None:
    for klass in cls.__mro__:
        note = getattr(klass, "__annotations__", {}).get(attr)
        if note is None:
            continue
        for name in _MODEL_REF.findall(str(note)):
            found = getattr(m, name, None)
            if isinstance(found, type) and issubclass(found, enum.Enum) and name in CLOSED_ENUMS:
                return found
        return None
    return None


def validate(body: Any, cls: type, *, create: bool, path: str = "") -> None:
    """Raise :class:`BodyRefused` for the first thing the resource provider would refuse in ``body``."""
    if not isinstance(body, dict):
        raise BodyRefused("InvalidRequestFormat", f"Cannot parse the request: '{path or 'body'}' must be an "
                          f"object of type '{cls.__name__}'.", path)
    fields = _fields(cls)
    for key, value in body.items():
        where = f"{path}.{key}" if path else key
        if key not in fields:
            raise BodyRefused("InvalidRequestFormat", f"Could not find member '{key}' on object of type "
                              f"'{cls.__name__}'. Path '{where}'.", where)
        attr, f = fields[key]
        if list(f._visibility or []) == ["read"]:
            raise BodyRefused("InvalidParameter", f"The property '{where}' is read-only and cannot be set.", where)
        if value is None:
            continue
        shape, inner = _inner(f._type)
        if shape == "model" and inner is not None:
            validate(value, inner, create=create, path=where)
        elif shape == "list":
            if not isinstance(value, list):
                raise BodyRefused("InvalidRequestFormat", f"'{where}' must be an array.", where)
            for k, item in enumerate(value):
                if inner is not None:
                    validate(item, inner, create=create, path=f"{where}[{k}]")
        enum_cls = _enum_of(cls, attr)
        if enum_cls is not None and isinstance(value, str):
            allowed = {str(e.value).lower() for e in enum_cls}
            if value.lower() not in allowed:
                raise BodyRefused("InvalidParameter", f"The value '{value}' of parameter '{where}' is not allowed. "
                                  f"Allowed values are '{', '.join(sorted(str(e.value) for e in enum_cls))}'.",
                                  where)
    if create:
        for key, (_, f) in fields.items():
            if not f._is_optional and list(f._visibility or []) != ["read"] and body.get(key) is None:
                where = f"{path}.{key}" if path else key
                raise BodyRefused("InvalidParameter", f"Required parameter '{where}' is missing (null).", where)


# (method, route name) -> (model, create?). The route names are the stand-in's handlers.
BODIES: dict[str, tuple[type, bool]] = {
    "_put_scale_set": (m.VirtualMachineScaleSet, True),
    "_patch_scale_set": (m.VirtualMachineScaleSetUpdate, False),
    "_put_instance": (m.VirtualMachineScaleSetVM, True),
    "_update_instances": (m.VirtualMachineScaleSetVMInstanceRequiredIDs, True),
    "_delete_instances": (m.VirtualMachineScaleSetVMInstanceRequiredIDs, True),
    "_action_run_command": (m.RunCommandInput, True),
    "_put_run_command": (m.VirtualMachineRunCommand, True),
    "_put_vm": (m.VirtualMachine, True),
    "_patch_vm": (m.VirtualMachineUpdate, False),
    "_put_snapshot": (m.Snapshot, True),
    "_put_disk": (m.Disk, True),
}
EXTENSIONS = {"vm": m.VirtualMachineExtension, "instance": m.VirtualMachineScaleSetVMExtension}


def model_for(handler: str, match: dict[str, str]) -> tuple[type, bool] | None:
    if handler == "_put_extension":
        return EXTENSIONS["instance" if "iid" in match else "vm"], True
    return BODIES.get(handler)
