"""The compute ports over azure-mgmt-compute: inventory, the change, snapshots, restore, shadows, capacity.

Every batch starts all its long-running operations first and then waits for each poller, so they run in
parallel in Azure (and start at the same virtual moment against the stand-in). Errors are mapped once, in
:func:`~shared.adapters.azure.errors.azure_errors`; retries of 429/5xx are azure-core's.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import re
import shlex
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any, TypeVar

from azure.core.exceptions import HttpResponseError
from azure.core.polling import LROPoller
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.compute import models as m
from azure.mgmt.core.polling.arm_polling import ARMPolling

from ...domain.errors import AzureOperationError, CapacityUnavailable, NotFound, ShadowRolloutError
from ...domain.model import (
    ApplyResult,
    ApplyStatus,
    ChangeSpec,
    RestoreResult,
    ShadowInfo,
    ShadowPlan,
    ShadowState,
    SnapshotInfo,
    VmInfo,
)
from ...domain.naming import ORDINAL_TAG
from ...domain.scale_set_limits import ScaleSetSize, max_instances
from ...domain.skus import family_alternatives
from ...ports import DiskSnapshots, Fleet, ShadowLoad, ShadowPool
from .clients import AzureSettings
from .errors import azure_errors, error_code
from .operations import StepEntry, StepPending, active_book, operation_status, remembered, step
from .scope_guard import ScopeGuard

T = TypeVar("T")
EXIT_MARKER = re.compile(r"shadow-rollout-exit=(\d+)")
EXIT_IN_MESSAGE = re.compile(r"exit code[:\s]+(\d+)", re.IGNORECASE)
TIMEOUT_EXIT = 124
"""coreutils ``timeout`` exits 124 when it had to stop the command: the apply hung."""
RESTORE_ATTEMPTS = 2
"""A restore whose operation ended Failed is tried once more (azure-core retries requests, not failed LROs)."""
CHANGE_EXTENSION = ("Microsoft.Azure.Extensions", "CustomScript", "2.1")
LOAD_GENERATOR = [
    # POSIX sh, awk and coreutils only (every stock Linux image has them; shadows have no internet egress to
    # install anything): one duty-cycled busy loop per CPU, 100 ms periods, for 24 hours.
    "pct=$(awk \"BEGIN{print int($SHADOW_ROLLOUT_LOAD_TARGET*100)}\")",
    "idle=$(awk \"BEGIN{print (100-$pct)/1000}\")",
    "cpus=$(getconf _NPROCESSORS_ONLN)",
    "for c in $(seq 1 \"$cpus\"); do nohup timeout 24h sh -c \"while :; do"
    " end=\\$(( \\$(date +%s\\\"\\\"%N) + ${pct}000000 ));"
    " while [ \\$(date +%s\\\"\\\"%N) -lt \\$end ]; do :; done; sleep $idle; done\" >/dev/null 2>&1 & done",
]


def _split_restored(snapshots: Sequence[SnapshotInfo], done: set[str],
                    how: str) -> tuple[dict[str, RestoreResult], list[SnapshotInfo]]:
    """The VMs an earlier run already restored (found by looking first), answered as such, and the rest to do."""
    already = {s.vm_id: RestoreResult(s.vm_id, True, 0, f"already restored from {s.snapshot_id.rsplit('/', 1)[-1]} "
                                      f"({how})") for s in snapshots if s.vm_id in done}
    return already, [s for s in snapshots if s.vm_id not in done]


@dataclass(frozen=True)
class ArmId:
    """A compute resource id: a VM, or a Uniform scale set's instance (``scale_set`` + ``instance``)."""

    subscription: str
    resource_group: str
    name: str
    scale_set: str = ""
    instance: str = ""

    @classmethod
    def parse(cls, rid: str) -> ArmId:
        p = rid.strip("/").split("/")
        low = [x.lower() for x in p]
        try:
            sub, rg = p[low.index("subscriptions") + 1], p[low.index("resourcegroups") + 1]
        except (ValueError, IndexError) as exc:
            raise ShadowRolloutError(f"not an Azure resource id: {rid!r}") from exc
        if "virtualmachinescalesets" in low:
            k = low.index("virtualmachinescalesets")
            ss = p[k + 1]
            if len(p) > k + 3 and low[k + 2] == "virtualmachines":
                return cls(sub, rg, f"{ss}_{p[k + 3]}", ss, p[k + 3])
            return cls(sub, rg, ss, ss)
        return cls(sub, rg, p[-1])

    @property
    def is_instance(self) -> bool:
        return bool(self.instance)


def _tag(text: str) -> str:
    return "".join(c if c.isalnum() or c == "-" else "-" for c in text)[:40]


def _wait_all(pollers: Mapping[str, tuple[str, LROPoller[Any]]],
              batch: Batch | None = None) -> tuple[dict[str, Any], dict[str, Exception]]:
    """Let the batch poll, then wait for every poller; results and mapped errors by key."""
    if batch is not None:
        batch.gate.set()
    done: dict[str, Any] = {}
    failed: dict[str, Exception] = {}
    for key, (operation, poller) in pollers.items():
        try:
            with azure_errors(operation, key):
                done[key] = poller.result()
        except ShadowRolloutError as exc:
            failed[key] = exc
    return done, failed


def _side_by_side(*chains: Callable[[], T]) -> list[T]:
    """Independent multi-step calls (on disjoint resources) run side by side under
    :func:`~shared.adapters.azure.operations.stepping`: each advances as far as it can in every run, and the
    call is asked back at the soonest ``Retry-After`` among them, so each chain begins its next step when its
    own step ended. Each ARM operation has its own status resource and runs on its own ("Track asynchronous
    Azure operations", learn.microsoft.com/azure/azure-resource-manager/management/async-operations): nothing
    in Azure makes the reimage of a Uniform instance wait for the disk swap of a Flexible VM. (One after the
    other, a rollback batch holding both took the two chains' durations added; the simulator's world restores
    every VM of a batch from the same moment.) Blocking (no step book: the peers' strategies restore one VM at
    a time) they run one after the other."""
    if active_book() is None:
        return [chain() for chain in chains]
    results: list[T] = []
    pending: list[float] = []
    for chain in chains:
        try:
            results.append(chain())
        except StepPending as running:
            pending.append(running.retry_after)
    if pending:
        raise StepPending(min(pending))
    return results


def _start(operation: str, resource: str, fn: Callable[[], T]) -> T:
    with azure_errors(operation, resource):
        return fn()


class OperationTimes:
    """Collects an LRO's ``startTime``/``endTime`` from ARM's operation-status answers (raw_response_hook)."""

    def __init__(self) -> None:
        self.start: datetime | None = None
        self.end: datetime | None = None

    def __call__(self, response: Any) -> None:
        body = operation_status(response)
        if body is not None:
            if body.get("startTime"):
                self.start = _parse_time(body["startTime"])
            if body.get("endTime"):
                self.end = _parse_time(body["endTime"])

    def seconds(self, end: datetime | None = None) -> float:
        e = end or self.end
        if self.start is None or e is None:
            return 0.0
        return round((e - self.start).total_seconds(), 1)


class _GatedPolling(ARMPolling):
    """ARM polling that starts only when its batch is released.

    ``LROPoller`` polls in a thread from the moment it is made; a batch first starts every operation and
    only then lets them all poll, so that in Azure they overlap and against the stand-in they all start at
    the same virtual moment.
    """

    def __init__(self, gate: threading.Event, interval: float, **config: Any) -> None:
        super().__init__(interval, **config)
        self._gate = gate

    def run(self) -> None:
        self._gate.wait()
        super().run()


class Batch:
    """Operations started together and waited for together (errors of one do not stop the others).

    Under :func:`~shared.adapters.azure.operations.stepping` it waits for nothing: each operation is begun or
    polled once (its continuation token kept in the step book) and :meth:`wait` raises
    :class:`~shared.adapters.azure.operations.StepPending` while any is running. ``tag`` tells apart two batches
    of the same operations on the same resources (a retry round)."""

    def __init__(self, client: ComputeManagementClient, tag: str = "") -> None:
        self.gate = threading.Event()
        self.interval = float(client._config.polling_interval)
        self.pollers: dict[str, tuple[str, LROPoller[Any]]] = {}
        self.failed: dict[str, Exception] = {}
        self.book = active_book()
        self.tag = tag
        self.steps: dict[str, StepEntry] = {}

    def start(self, key: str, operation: str, call: Callable[..., LROPoller[Any]], *args: Any,
              hook: OperationTimes | None = None) -> None:
        config: dict[str, Any] = {"raw_response_hook": hook} if hook is not None else {}
        if self.book is not None:
            ident = "|".join([self.tag, operation, key, *(a for a in args if isinstance(a, str))])
            entry = self.steps[key] = step(self.book, ident, call, args, config, operation, key)
            if hook is not None:  # an operation that ended in an earlier run: its times from the book
                entry.times.update({k: v for k, v in (("start", hook.start), ("end", hook.end)) if v is not None})
                hook.start, hook.end = entry.times.get("start"), entry.times.get("end")
            return
        try:
            with azure_errors(operation, key):
                self.pollers[key] = (operation, call(*args, polling=_GatedPolling(self.gate, self.interval, **config),
                                                     **config))
        except ShadowRolloutError as exc:
            self.failed[key] = exc

    def wait(self) -> tuple[dict[str, Any], dict[str, Exception]]:
        if self.book is not None:
            running = [e.retry_after for e in self.steps.values() if not e.done]
            if running:
                raise StepPending(max(running))
            return ({k: e.result for k, e in self.steps.items() if e.error is None},
                    {k: e.error for k, e in self.steps.items() if e.error is not None})
        done, failed = _wait_all(self.pollers, self)
        return done, {**self.failed, **failed}

    def keys(self) -> list[str]:
        """Every operation started, whether its request was accepted or not."""
        return [*self.pollers, *self.failed, *self.steps]

    def wait_ok(self) -> dict[str, Any]:
        """Wait, and raise the first error if any operation failed."""
        done, failed = self.wait()
        _raise_first(failed)
        return done


def _parse_time(v: Any) -> datetime:
    if isinstance(v, datetime):
        return v
    return datetime.fromisoformat(str(v).replace("Z", "+00:00"))


class _Compute:
    def __init__(self, settings: AzureSettings, client: ComputeManagementClient | None = None) -> None:
        self.settings = settings
        self._client = client
        self._guard: ScopeGuard[ComputeManagementClient] | None = None

    def _new_client(self, subscription: str) -> ComputeManagementClient:
        s = self.settings
        return ComputeManagementClient(s.credential(), subscription, base_url=s.arm_url, **s.client_kwargs())

    @property
    def client(self) -> ComputeManagementClient:
        """The client of the app's own subscription (the shadow pool lives there)."""
        if self._client is None:
            self._client = self._new_client(self.settings.subscription_id)
        return self._client

    @property
    def guard(self) -> ScopeGuard[ComputeManagementClient]:
        """One client per target subscription; mutating calls on targets are checked against the scope."""
        if self._guard is None:
            home = self.settings.subscription_id
            self._guard = ScopeGuard(lambda sub: self.client if sub == home.casefold() else self._new_client(sub),
                                     home)
        return self._guard

    def _vm(self, rid: ArmId) -> Any:
        """A VM or instance as read before acting (one step later, the same answer: ``operations.remembered``);
        callers copy it before changing it."""
        client = self.guard.client_for([f"/subscriptions/{rid.subscription}/resourceGroups/{rid.resource_group}"])
        if rid.is_instance:
            return remembered(f"vm|{rid}", lambda: _start("get_instance", rid.name, lambda: (
                client.virtual_machine_scale_set_vms.get(rid.resource_group, rid.scale_set, rid.instance))))
        return remembered(f"vm|{rid}", lambda: _start("get_vm", rid.name, lambda: client.virtual_machines.get(
            rid.resource_group, rid.name)))


# ---------------------------------------------------------------------------------------------- fleet
class AzureFleet(_Compute, Fleet):
    """Production scale sets, Uniform and Flexible."""

    def inventory(self, scale_set_ids: Sequence[str]) -> list[VmInfo]:
        out: list[VmInfo] = []
        for sid in scale_set_ids:
            rid = ArmId.parse(sid)
            c = self.guard.client_for([sid])
            with azure_errors("get_scale_set", sid):
                vmss = c.virtual_machine_scale_sets.get(rid.resource_group, rid.name)
            mode = _text(vmss.orchestration_mode) or "Uniform"
            if mode == "Uniform":
                with azure_errors("list_instances", sid):
                    instances = list(c.virtual_machine_scale_set_vms.list(rid.resource_group, rid.name))
                out.extend(VmInfo(_text(v.id), rid.name, _text(v.sku.name if v.sku else ""), _image(v.storage_profile),
                                  (v.zones or [""])[0], "Uniform", _os_disk(v.storage_profile)) for v in instances)
            else:
                flt = f"'virtualMachineScaleSet/id' eq '{vmss.id}'"
                with azure_errors("list_vms", sid):
                    vms = list(c.virtual_machines.list(rid.resource_group, filter=flt))
                out.extend(VmInfo(_text(v.id), rid.name, _text(v.hardware_profile.vm_size if v.hardware_profile
                                                               else ""), _image(v.storage_profile),
                                  (v.zones or [""])[0], "Flexible", _os_disk(v.storage_profile)) for v in vms)
        return out

    def guest_extensions(self, scale_set_ids: Sequence[str]) -> dict[str, frozenset[str]]:
        """The extensions in each scale set's model: their names and types (``properties.type``)."""
        out: dict[str, frozenset[str]] = {}
        for sid in scale_set_ids:
            rid = ArmId.parse(sid)
            with azure_errors("get_scale_set", sid):
                vmss = self.client.virtual_machine_scale_sets.get(rid.resource_group, rid.name)
            profile = vmss.virtual_machine_profile
            exts = (profile.extension_profile.extensions or []) if profile and profile.extension_profile else []
            out[sid] = frozenset(x for e in exts for x in (e.name, e.properties.type if e.properties else None) if x)
        return out

    # ---------------------------------------------------------------- the change
    def apply_change(self, vm_ids: Sequence[str], change: ChangeSpec, *, timeout_minutes: float) -> list[ApplyResult]:
        if change.kind == "run-command":
            return self._apply_run_command(vm_ids, change, timeout_minutes)
        if change.kind == "extension":
            return self._apply_extension(vm_ids, change, timeout_minutes)
        if change.kind == "model-update":
            return self._apply_model_update(vm_ids, change, timeout_minutes)
        raise ShadowRolloutError(f"unknown change kind {change.kind!r}")

    def _apply_run_command(self, vm_ids: Sequence[str], change: ChangeSpec, timeout: float) -> list[ApplyResult]:
        """A managed Run Command per VM: ARM reports exit code, time-out and start/end times."""
        c = self.guard.client_for(vm_ids, "apply_change")
        name = _resource_name(f"shadow-rollout-{change.change_id}")
        body = m.VirtualMachineRunCommand(
            location=self.settings.location,
            properties=m.VirtualMachineRunCommandProperties(
                source=m.VirtualMachineRunCommandScriptSource(script="\n".join(_script(change))),
                timeout_in_seconds=round(timeout * 60), async_execution=False,
                treat_failure_as_deployment_failure=False))
        # look before acting: a VM that already ran this change's run command (an earlier run of the activity,
        # at-least-once delivery) answers with that execution; a PUT would run the script a second time
        found: dict[str, Any] = {}
        for v in vm_ids:
            got = _existing("get_run_command", v, partial(_get_run_command, c, v, name))
            if got is not None:
                found[v] = got
        batch = Batch(c)
        for v in vm_ids:
            if v in found:
                continue
            rid = ArmId.parse(v)
            if rid.is_instance:
                batch.start(v, "run_command", c.virtual_machine_scale_set_vm_run_commands.begin_create_or_update,
                            rid.resource_group, rid.scale_set, rid.instance, name, body)
            else:
                batch.start(v, "run_command", c.virtual_machine_run_commands.begin_create_or_update,
                            rid.resource_group, rid.name, name, body)
        batch.wait_ok()
        out = []
        for v in vm_ids:
            rc = found.get(v)
            if rc is None or not _run_command_ended(rc):
                with azure_errors("get_run_command", v):
                    rc = _get_run_command(c, v, name)
            view = rc.properties.instance_view if rc.properties else None
            if view is None:
                raise AzureOperationError(f"run command on {v}: no instance view in ARM's answer", resource=v)
            seconds = round((_parse_time(view.end_time) - _parse_time(view.start_time)).total_seconds(), 1) \
                if view.start_time and view.end_time else 0.0
            state = (view.execution_state or "").lower()
            if state == "succeeded" and (view.exit_code or 0) == 0:
                out.append(ApplyResult(v, ApplyStatus.OK, 0, seconds))
            elif state == "timedout" or view.exit_code == TIMEOUT_EXIT:
                out.append(ApplyResult(v, ApplyStatus.TIMEOUT, None, seconds, "run command timed out"))
            else:
                out.append(ApplyResult(v, ApplyStatus.FAILED, view.exit_code if view.exit_code is not None else 1,
                                       seconds, (view.error or "")[:200]))
        return out

    def _apply_extension(self, vm_ids: Sequence[str], change: ChangeSpec, timeout: float) -> list[ApplyResult]:
        """A VM extension per VM (CustomScript by default), its command bounded by ``timeout``."""
        c = self.guard.client_for(vm_ids, "apply_change")
        name, ext = _extension(change, timeout, self.settings.location)
        # look before acting: a VM whose extension of this name already ended (an earlier run of the activity)
        # answers with that outcome, not with a second PUT
        found: dict[str, Any] = {}
        for v in vm_ids:
            got = _existing("get_extension", v, partial(_get_extension, c, v, name))
            if got is not None and _extension_ended(got):
                found[v] = got
        batch = Batch(c)
        times: dict[str, OperationTimes] = {}
        for v in vm_ids:
            rid = ArmId.parse(v)
            times[v] = hook = OperationTimes()
            if v in found:
                continue
            if rid.is_instance:
                batch.start(v, "extension", c.virtual_machine_scale_set_vm_extensions.begin_create_or_update,
                            rid.resource_group, rid.scale_set, rid.instance, name,
                            m.VirtualMachineScaleSetVMExtension(**_ext_kwargs(ext)), hook=hook)
            else:
                batch.start(v, "extension", c.virtual_machine_extensions.begin_create_or_update,
                            rid.resource_group, rid.name, name, ext, hook=hook)
        _, failed = batch.wait()
        out = []
        for v in vm_ids:
            if v in found:
                out.append(_extension_result(v, found[v]))
                continue
            e = failed.get(v)
            if e is None:
                out.append(ApplyResult(v, ApplyStatus.OK, 0, times[v].seconds()))
            elif _is_extension_failure(e):  # the change failed on this VM: a result, not an error
                out.append(_failed_apply(v, str(e), times[v].seconds()))
            else:
                raise e
        return out

    def _apply_model_update(self, vm_ids: Sequence[str], change: ChangeSpec, timeout: float) -> list[ApplyResult]:
        """Put the change in the scale set's model, then ``update_instances`` for exactly these instances."""
        c = self.guard.client_for(vm_ids, "apply_change")
        name, ext = _extension(change, timeout, self.settings.location)
        groups: dict[tuple[str, str], list[str]] = {}
        for v in vm_ids:
            rid = ArmId.parse(v)
            if rid.is_instance:
                groups.setdefault((rid.resource_group, rid.scale_set), []).append(v)
            else:
                vm = self._vm(rid)
                pool = ArmId.parse(vm.virtual_machine_scale_set.id) if vm.virtual_machine_scale_set else None
                if pool is None:
                    raise ShadowRolloutError(f"{v} belongs to no scale set: a model-update change cannot reach it")
                groups.setdefault((pool.resource_group, pool.name), []).append(v)
        # look before acting: an instance that already reports this change's extension was updated by an earlier
        # run of the activity; it is not updated again (and a scale set with none left is not touched)
        already = {v: self._instance_result(v, name, OperationTimes(), status) for v in vm_ids
                   if (status := remembered(f"extension_status|{v}|{name}",
                                            partial(self._extension_status, v, name))) is not None}
        groups = {k: todo for k, members in groups.items() if (todo := [v for v in members if v not in already])}
        if not groups:
            return [already[v] for v in vm_ids]
        model = m.VirtualMachineScaleSetUpdate(properties=m.VirtualMachineScaleSetUpdateProperties(
            virtual_machine_profile=m.VirtualMachineScaleSetUpdateVMProfile(
                extension_profile=m.VirtualMachineScaleSetExtensionProfile(extensions=[
                    m.VirtualMachineScaleSetExtension(name=name, **_ext_kwargs(ext))]))))
        models = Batch(c)
        for rg, ss in groups:
            models.start(f"{rg}/{ss}", "update_model", c.virtual_machine_scale_sets.begin_update, rg, ss, model)
        models.wait_ok()
        batch = Batch(c)
        hooks: dict[str, OperationTimes] = {}
        for (rg, ss), members in groups.items():
            hooks[ss] = OperationTimes()
            ids = [ArmId.parse(v).instance or ArmId.parse(v).name for v in members]
            batch.start(ss, "update_instances", c.virtual_machine_scale_sets.begin_update_instances, rg, ss,
                        m.VirtualMachineScaleSetVMInstanceRequiredIDs(instance_ids=ids), hook=hooks[ss])
        _, failed = batch.wait()
        _raise_first({k: e for k, e in failed.items() if not _is_extension_failure(e)})
        out: dict[str, ApplyResult] = dict(already)
        for (_, ss), members in groups.items():
            for v in members:
                out[v] = self._instance_result(v, name, hooks[ss])
        return [out[v] for v in vm_ids]

    def _extension_status(self, v: str, extension: str) -> Any:
        """The status the change's extension reports in ``v``'s instance view (None: it reports nothing)."""
        rid = ArmId.parse(v)
        with azure_errors("instance_view", v):
            c = self.guard.client_for([v])
            view: Any = (c.virtual_machine_scale_set_vms.get_instance_view(
                rid.resource_group, rid.scale_set, rid.instance) if rid.is_instance
                else c.virtual_machines.instance_view(rid.resource_group, rid.name))
        return next((s for e in (view.extensions or []) if e.name == extension for s in (e.statuses or [])), None)

    def _instance_result(self, v: str, extension: str, hook: OperationTimes, status: Any = None) -> ApplyResult:
        status = status or self._extension_status(v, extension)
        if status is None:
            return ApplyResult(v, ApplyStatus.FAILED, None, hook.seconds(), "no status of the change's extension")
        seconds = hook.seconds(status.time)
        if (status.code or "").lower().startswith("provisioningstate/succeeded"):
            return ApplyResult(v, ApplyStatus.OK, 0, seconds)
        return _failed_apply(v, f"{status.code} {status.message or ''}", seconds)

    # ---------------------------------------------------------------- restore
    def restore_from_snapshots(self, snapshots: Sequence[SnapshotInfo]) -> list[RestoreResult]:
        """Flexible and standalone VMs: OS disk swap. Uniform instances: reimage plus data disks (see docs).

        The two chains run side by side (:func:`_side_by_side`): a batch ends with its slowest restore, not
        with the swaps' and the reimages' durations added."""
        swaps = [s for s in snapshots if not ArmId.parse(s.vm_id).is_instance]
        uniform = [s for s in snapshots if ArmId.parse(s.vm_id).is_instance]
        swapped, reimaged = _side_by_side(partial(self._swap_os_disks, swaps),
                                          partial(self._reimage_instances, uniform))
        results = {**swapped, **reimaged}
        return [results[s.vm_id] for s in snapshots]

    def _swap_os_disks(self, snapshots: Sequence[SnapshotInfo]) -> dict[str, RestoreResult]:
        if not snapshots:
            return {}
        c = self.guard.client_for([x.vm_id for x in snapshots], "restore")
        vms = {s.vm_id: self._vm(ArmId.parse(s.vm_id)) for s in snapshots}
        disks: dict[str, str] = {}
        for s in snapshots:
            rid = ArmId.parse(s.vm_id)
            disks[s.vm_id] = (f"/subscriptions/{rid.subscription}/resourceGroups/{rid.resource_group}/providers/"
                              f"Microsoft.Compute/disks/{_restored_disk_name(s)}")
        # look before acting: a VM whose OS disk already is the one restored from that snapshot was restored by
        # an earlier run of this activity (at-least-once delivery); it is not restored again
        done = {s.vm_id for s in snapshots
                if _os_disk(vms[s.vm_id].storage_profile).lower() == disks[s.vm_id].lower()}
        already, snapshots = _split_restored(snapshots, done, "disk swap")
        if not snapshots:
            return already
        create = Batch(c)
        for s in snapshots:
            rid, vm = ArmId.parse(s.vm_id), vms[s.vm_id]
            disk = m.Disk(location=vm.location, zones=vm.zones, tags={"shadow-rollout": "restored"},
                          properties=m.DiskProperties(creation_data=m.CreationData(
                              create_option="Copy", source_resource_id=s.snapshot_id),
                              network_access_policy="DenyAll", public_network_access="Disabled"))
            create.start(s.vm_id, "create_disk", c.disks.begin_create_or_update, rid.resource_group,
                         _restored_disk_name(s), disk)
        create.wait_ok()
        stop = Batch(c)
        for s in snapshots:
            rid = ArmId.parse(s.vm_id)
            stop.start(s.vm_id, "deallocate", c.virtual_machines.begin_deallocate, rid.resource_group, rid.name)
        stop.wait_ok()
        attempts = {s.vm_id: 0 for s in snapshots}
        todo = list(snapshots)
        failed: dict[str, Exception] = {}
        rounds = 0
        while todo:  # at most RESTORE_ATTEMPTS rounds: a Failed LRO is not a request azure-core would retry
            rounds += 1
            swap = Batch(c, f"round{rounds}")
            for s in todo:
                rid = ArmId.parse(s.vm_id)
                attempts[s.vm_id] += 1
                swap.start(s.vm_id, "swap_os_disk", c.virtual_machines.begin_update, rid.resource_group, rid.name,
                           m.VirtualMachineUpdate(properties=m.VirtualMachineProperties(
                               storage_profile=m.StorageProfile(os_disk=m.OSDisk(
                                   create_option="Attach", managed_disk=m.ManagedDiskParameters(id=disks[s.vm_id]))))))
            _, round_failed = swap.wait()
            failed = {**{k: e for k, e in failed.items() if k not in {x.vm_id for x in todo}}, **round_failed}
            todo = [s for s in todo if s.vm_id in failed and attempts[s.vm_id] < RESTORE_ATTEMPTS
                    and not isinstance(failed[s.vm_id], _NOT_RETRIED)]
        _raise_first({k: e for k, e in failed.items() if isinstance(e, _NOT_RETRIED)})
        start = Batch(c)
        for s in snapshots:
            rid = ArmId.parse(s.vm_id)
            start.start(s.vm_id, "start", c.virtual_machines.begin_start, rid.resource_group, rid.name)
        start.wait_ok()
        return {**already, **{s.vm_id: RestoreResult(s.vm_id, s.vm_id not in failed, attempts[s.vm_id],
                                                     f"OS disk restored from {s.snapshot_id.rsplit('/', 1)[-1]} "
                                                     "(disk swap)" if s.vm_id not in failed else str(failed[s.vm_id]))
                             for s in snapshots}}

    def _reimage_instances(self, snapshots: Sequence[SnapshotInfo]) -> dict[str, RestoreResult]:
        """Uniform: reimage to the model's (pre-change) image, then data disks made from their snapshots."""
        if not snapshots:
            return {}
        c = self.guard.client_for([x.vm_id for x in snapshots], "restore")
        # look before acting: a reimage gives the instance a new OS disk (the old one is deleted or detached, as
        # its deleteOption says: https://learn.microsoft.com/rest/api/compute/virtualmachines/reimage), so an
        # instance whose OS disk is no longer the one snapshotted was reimaged by an earlier run of the activity
        # (at-least-once delivery): it is not reimaged again, only its data disks are made sure of
        done = {s.vm_id for s in snapshots
                if _os_disk(self._vm(ArmId.parse(s.vm_id)).storage_profile).lower() != s.disk_id.lower()}
        for s in snapshots:
            if s.vm_id in done:
                self._restore_data_disks(s)
        already, snapshots = _split_restored(snapshots, done, "reimage + data disk from snapshot")
        if not snapshots:
            return already
        attempts = {s.vm_id: 0 for s in snapshots}
        todo = list(snapshots)
        failed: dict[str, Exception] = {}
        rounds = 0
        while todo:
            rounds += 1
            batch = Batch(c, f"round{rounds}")
            for s in todo:
                rid = ArmId.parse(s.vm_id)
                attempts[s.vm_id] += 1
                batch.start(s.vm_id, "reimage", c.virtual_machine_scale_set_vms.begin_reimage, rid.resource_group,
                            rid.scale_set, rid.instance)
            _, round_failed = batch.wait()
            failed = {**{k: e for k, e in failed.items() if k not in {x.vm_id for x in todo}}, **round_failed}
            todo = [s for s in todo if s.vm_id in failed and attempts[s.vm_id] < RESTORE_ATTEMPTS
                    and not isinstance(failed[s.vm_id], _NOT_RETRIED)]
        _raise_first({k: e for k, e in failed.items() if isinstance(e, _NOT_RETRIED)})
        for s in snapshots:
            if s.vm_id not in failed:
                self._restore_data_disks(s)
        return {**already, **{s.vm_id: RestoreResult(s.vm_id, s.vm_id not in failed, attempts[s.vm_id],
                                                     f"OS disk restored from {s.snapshot_id.rsplit('/', 1)[-1]} "
                                                     "(reimage + data disk from snapshot)" if s.vm_id not in failed
                                                     else str(failed[s.vm_id])) for s in snapshots}}

    def _restore_data_disks(self, s: SnapshotInfo) -> None:
        """Replace each data disk by one made from its pre-change snapshot (``<os snapshot>-lun<N>``)."""
        rid = ArmId.parse(s.vm_id)
        vm = self._vm(rid)
        data = list(vm.storage_profile.data_disks or []) if vm.storage_profile else []
        if not data:
            return
        snap = ArmId.parse(s.snapshot_id)
        names = {d.lun: _resource_name(f"{rid.name}-restored-lun{d.lun}-{snap.name}") for d in data}
        if all(d.managed_disk is not None
               and (d.managed_disk.id or "").lower().endswith(f"/disks/{names[d.lun]}".lower()) for d in data):
            return  # restored by an earlier run (at-least-once delivery): nothing to create or attach again
        c = self.guard.client_for([s.vm_id], "restore_data_disks")
        create = Batch(c)
        for d in data:
            create.start(str(d.lun), "create_disk", c.disks.begin_create_or_update, rid.resource_group, names[d.lun],
                         m.Disk(location=vm.location, zones=vm.zones, properties=m.DiskProperties(
                             creation_data=m.CreationData(create_option="Copy",
                                                          source_resource_id=f"{s.snapshot_id}-lun{d.lun}"),
                             network_access_policy="DenyAll", public_network_access="Disabled")))
        created = create.wait_ok()
        vm = copy.deepcopy(vm)
        vm.storage_profile.data_disks = [m.DataDisk(lun=d.lun, create_option="Attach",
                                                    managed_disk=m.ManagedDiskParameters(id=created[str(d.lun)].id))
                                         for d in data]
        attach = Batch(c)
        attach.start(s.vm_id, "attach_data_disks", c.virtual_machine_scale_set_vms.begin_update, rid.resource_group,
                     rid.scale_set, rid.instance, vm)
        attach.wait_ok()

    # ---------------------------------------------------------------- scripts and capacity
    def run_script(self, vm_ids: Sequence[str], script: str) -> dict[str, bool]:
        """Action Run Command; the script's exit status is echoed as a marker and read back."""
        c = self.guard.client_for(vm_ids, "run_script")
        results = _run_commands(c, vm_ids, ["set +e", f"( {script} )", 'echo "shadow-rollout-exit=$?"'])
        out = {}
        for v, res in results.items():
            text = " ".join((x.message or "") for x in (res.value or []))
            code = EXIT_MARKER.search(text)
            out[v] = code is not None and int(code.group(1)) == 0
        return out

    def capacity(self, scale_set_id: str) -> int:
        return _capacity_of(self._scale_set(scale_set_id), scale_set_id)

    def size(self, scale_set_id: str) -> ScaleSetSize:
        """Capacity and maximum from one read of the scale set."""
        vmss = self._scale_set(scale_set_id)
        return ScaleSetSize(_capacity_of(vmss, scale_set_id), _max_capacity_of(vmss))

    def _scale_set(self, scale_set_id: str) -> m.VirtualMachineScaleSet:
        rid = ArmId.parse(scale_set_id)
        with azure_errors("get_scale_set", scale_set_id):
            return self.guard.client_for([scale_set_id]).virtual_machine_scale_sets.get(rid.resource_group, rid.name)

    def set_capacity(self, scale_set_id: str, capacity: int) -> int:
        """A 400 here refuses the count (sku.capacity is the only thing sent): ``CapacityUnavailable``."""
        rid = ArmId.parse(scale_set_id)
        c = self.guard.client_for([scale_set_id], "set_capacity")
        try:
            poller = _start("set_capacity", scale_set_id, lambda: c.virtual_machine_scale_sets.begin_update(
                rid.resource_group, rid.name, m.VirtualMachineScaleSetUpdate(sku=m.Sku(capacity=capacity))))
            with azure_errors("set_capacity", scale_set_id):
                vmss = poller.result()
        except AzureOperationError as exc:
            if exc.status != 400:
                raise
            raise CapacityUnavailable(str(exc), operation=exc.operation, resource=exc.resource,
                                      status=exc.status) from exc
        return int(vmss.sku.capacity) if vmss.sku and vmss.sku.capacity is not None else capacity

    def max_capacity(self, scale_set_id: str) -> int:
        return _max_capacity_of(self._scale_set(scale_set_id))


def _capacity_of(vmss: m.VirtualMachineScaleSet, scale_set_id: str) -> int:
    if vmss.sku is None or vmss.sku.capacity is None:
        raise AzureOperationError(f"scale set {scale_set_id} has no capacity in ARM's answer", resource=scale_set_id)
    return int(vmss.sku.capacity)


def _max_capacity_of(vmss: m.VirtualMachineScaleSet) -> int:
    """From the scale set's orchestration mode and ``singlePlacementGroup`` (shared/domain/scale_set_limits.py)."""
    flexible = vmss.orchestration_mode == "Flexible"  # the SDK's str-valued enum compares as its value
    return max_instances("Flexible" if flexible else "Uniform", vmss.single_placement_group)


# ---------------------------------------------------------------------------------------------- snapshots
class AzureDiskSnapshots(_Compute, DiskSnapshots):
    """Incremental, private snapshots of each VM's OS and data disks."""

    RETENTION_TAG = "shadow-rollout-tag"

    def snapshot(self, vm_ids: Sequence[str], *, tag: str) -> list[SnapshotInfo]:
        c = self.guard.client_for(vm_ids, "snapshot")
        label = _tag(tag)
        vms = {v: self._vm(ArmId.parse(v)) for v in vm_ids}
        batch = Batch(c)
        os_disks: dict[str, str] = {}
        for v, vm in vms.items():
            rid = ArmId.parse(v)
            name = _resource_name(f"{label}-{rid.name}")
            os_disks[v] = _os_disk(vm.storage_profile)
            batch.start(v, "snapshot", c.snapshots.begin_create_or_update, rid.resource_group, name,
                        _snapshot(vm.location, os_disks[v], label, v))
            for d in (vm.storage_profile.data_disks or []) if vm.storage_profile else []:
                batch.start(f"{v}#lun{d.lun}", "snapshot", c.snapshots.begin_create_or_update, rid.resource_group,
                            f"{name}-lun{d.lun}", _snapshot(vm.location, d.managed_disk.id, label, v))
        done, _ = batch.wait()  # a VM whose snapshots did not all succeed is left out, as the port says
        keys = batch.keys()
        return [SnapshotInfo(v, done[v].id, os_disks[v]) for v in vm_ids
                if v in done and all(k in done for k in keys if k.startswith(f"{v}#"))]

    def delete_tagged(self, tag: str, resource_groups: Sequence[str]) -> int:
        """Resource groups are named case-insensitively (ARM): each is listed once."""
        groups = {g.lower(): g for g in resource_groups}
        return sum(self.delete_snapshots(groups[k], tag) for k in sorted(groups))

    def delete_snapshots(self, resource_group: str, tag: str) -> int:
        """Delete the snapshots a rollout took (its ``tag``), e.g. once they have expired."""
        c = self.client
        label = _tag(tag)
        snaps = _start("list_snapshots", resource_group, lambda: [
            s for s in c.snapshots.list_by_resource_group(resource_group)
            if (s.tags or {}).get(self.RETENTION_TAG) == label])
        batch = Batch(c)
        for snap in snaps:
            batch.start(_text(snap.name), "delete_snapshot", c.snapshots.begin_delete, resource_group, snap.name)
        batch.wait_ok()
        return len(snaps)


def _snapshot(location: str, disk_id: str, label: str, vm_id: str, ordinal: int | None = None) -> m.Snapshot:
    tags = {"shadow-rollout-tag": label, "shadow-rollout-vm": vm_id[-250:]}
    if ordinal is not None:
        tags[ORDINAL_TAG] = str(ordinal)
    return m.Snapshot(location=location, tags=tags,
                      properties=m.SnapshotProperties(
                          incremental=True, creation_data=m.CreationData(create_option="Copy",
                                                                         source_resource_id=disk_id),
                          network_access_policy="DenyAll", public_network_access="Disabled"))


# ---------------------------------------------------------------------------------------------- shadows
class AzureShadowPool(_Compute, ShadowPool):
    """Spot VMs in one Flexible scale set, each on a disk made from an incremental snapshot of its source."""

    def _pool_id(self) -> str:
        s = self.settings
        return (f"/subscriptions/{s.subscription_id}/resourceGroups/{s.shadow_resource_group}/providers/"
                f"Microsoft.Compute/virtualMachineScaleSets/{s.shadow_pool_name}")

    def _ensure_pool(self) -> str:
        s, c = self.settings, self.client
        found = _existing("get_pool", s.shadow_pool_name, lambda: c.virtual_machine_scale_sets.get(
            s.shadow_resource_group, s.shadow_pool_name))
        if found is not None:
            return str(found.id)
        pool = m.VirtualMachineScaleSet(location=s.location, tags={"shadow-rollout": "shadow-pool"},
                                        properties=m.VirtualMachineScaleSetProperties(
                                            orchestration_mode="Flexible", platform_fault_domain_count=1))
        batch = Batch(c)
        batch.start("pool", "create_pool", c.virtual_machine_scale_sets.begin_create_or_update,
                    s.shadow_resource_group, s.shadow_pool_name, pool)
        return str(batch.wait_ok()["pool"].id)

    def create(self, plans: Sequence[ShadowPlan], *, rollout_id: str, spot_fallback: str,
               max_regular: int | None = None) -> list[ShadowInfo]:
        if not plans:
            return []
        s, c = self.settings, self.client
        rg = s.shadow_resource_group
        pool = self._ensure_pool()
        label = _tag(rollout_id)
        names = _shadow_names(label, plans)
        sources = {p.source_vm_id: self._vm(ArmId.parse(p.source_vm_id)) for p in plans}
        tags = {"shadow-rollout": rollout_id[:250], "shadow-rollout-tag": label}
        result: dict[int, ShadowInfo] = {}

        def fail(k: int, message: str) -> None:
            p = plans[k]
            result[k] = ShadowInfo("", p.source_vm_id, p.stratum_key, p.sku, p.zone, False, ShadowState.FAILED, message)

        snaps = Batch(c)
        for i, p in enumerate(plans):
            snaps.start(str(i), "shadow_snapshot", c.snapshots.begin_create_or_update, rg, f"{names[i]}-snap",
                        _snapshot(s.location, _os_disk(sources[p.source_vm_id].storage_profile), label, p.source_vm_id,
                                  p.ordinal))
        snap_done, snap_failed = snaps.wait()
        for k, e in snap_failed.items():
            fail(int(k), str(e))
        disks = Batch(c)
        for k in sorted(snap_done, key=int):
            disks.start(k, "shadow_disk", c.disks.begin_create_or_update, rg, f"{names[int(k)]}-osdisk", m.Disk(
                location=s.location, zones=_zones(plans[int(k)].zone), tags=tags, properties=m.DiskProperties(
                    creation_data=m.CreationData(create_option="Copy", source_resource_id=snap_done[k].id),
                    network_access_policy="DenyAll", public_network_access="Disabled")))
        disk_done, disk_failed = disks.wait()
        for k, e in disk_failed.items():
            fail(int(k), str(e))
        vms = Batch(c)
        for k in sorted(disk_done, key=int):
            vms.start(k, "create_vm", c.virtual_machines.begin_create_or_update, rg, names[int(k)],
                      self._vm_body(plans[int(k)], disk_done[k].id, pool, tags, spot=True,
                                    source=sources[plans[int(k)].source_vm_id]))
        vm_done, vm_failed = vms.wait()
        regular = Batch(c)
        regular_left = max_regular
        family: dict[str, ShadowPlan] = {}
        for k, e in sorted(vm_failed.items(), key=lambda x: int(x[0])):
            p = plans[int(k)]
            alternatives = family_alternatives(p.sku) if spot_fallback == "family" else []
            if isinstance(e, CapacityUnavailable) and spot_fallback == "regular" and (
                    regular_left is None or regular_left > 0):
                regular.start(k, "create_vm", c.virtual_machines.begin_create_or_update, rg, f"{names[int(k)]}-r",
                              self._vm_body(p, disk_done[k].id, pool, tags, spot=False,
                                            source=sources[p.source_vm_id]))
                regular_left = None if regular_left is None else regular_left - 1
            elif isinstance(e, CapacityUnavailable) and alternatives:
                # one Spot try on the nearest size of the same series
                family[k] = dataclasses.replace(p, sku=alternatives[0])
                regular.start(k, "create_vm", c.virtual_machines.begin_create_or_update, rg, f"{names[int(k)]}-f",
                              self._vm_body(family[k], disk_done[k].id, pool, tags, spot=True,
                                            source=sources[p.source_vm_id]))
            elif isinstance(e, CapacityUnavailable):
                fail(int(k), f"Spot capacity refused for {p.sku} in zone {p.zone}")
            else:
                fail(int(k), str(e))
        reg_done, reg_failed = regular.wait()
        for k, e in reg_failed.items():
            fail(int(k), str(e))
        for key, vm in vm_done.items():
            p = plans[int(key)]
            result[int(key)] = ShadowInfo(vm.id, p.source_vm_id, p.stratum_key, p.sku, p.zone, True,
                                          ShadowState.RUNNING)
        for key, vm in reg_done.items():
            p = plans[int(key)]
            if key in family:
                alt = family[key].sku
                result[int(key)] = ShadowInfo(vm.id, p.source_vm_id, p.stratum_key, alt, p.zone, True,
                                              ShadowState.RUNNING, f"Spot refused for {p.sku}: Spot {alt} of the "
                                                                   "same family")
                continue
            result[int(key)] = ShadowInfo(vm.id, p.source_vm_id, p.stratum_key, p.sku, p.zone, False,
                                          ShadowState.RUNNING, f"Spot refused for {p.sku}: regular-priced VM")
        self._clean_failed([names[i] for i, r in result.items() if r.state is ShadowState.FAILED])
        return [result[k] for k in range(len(plans))]

    def _vm_body(self, p: ShadowPlan, disk_id: str, pool: str, tags: dict[str, str], *, spot: bool,
                 source: Any = None) -> m.VirtualMachine:
        """A shadow on its source's disk copy: same security type (Trusted Launch...) and purchase plan as the
        source, which Azure requires of a VM on that disk (docs/azure-adapters.md)."""
        s = self.settings
        ip = m.VirtualMachineNetworkInterfaceIPConfiguration(
            name="ipconfig1", properties=m.VirtualMachineNetworkInterfaceIPConfigurationProperties(
                subnet=m.SubResource(id=s.shadow_subnet_id)))
        nic = m.VirtualMachineNetworkInterfaceConfiguration(
            name="shadow-nic", properties=m.VirtualMachineNetworkInterfaceConfigurationProperties(
                primary=True, delete_option="Delete", ip_configurations=[ip]))
        props = m.VirtualMachineProperties(
            hardware_profile=m.HardwareProfile(vm_size=p.sku),
            storage_profile=m.StorageProfile(os_disk=m.OSDisk(
                os_type="Linux", create_option="Attach", delete_option="Delete",
                managed_disk=m.ManagedDiskParameters(id=disk_id))),
            network_profile=m.NetworkProfile(network_api_version="2020-11-01",
                                             network_interface_configurations=[nic]),
            virtual_machine_scale_set=m.SubResource(id=pool),
            priority="Spot" if spot else "Regular")
        if spot:
            props.eviction_policy = "Deallocate"
            props.billing_profile = m.BillingProfile(max_price=-1)
        security = getattr(source, "security_profile", None)
        if security is not None and security.security_type:
            uefi = security.uefi_settings
            props.security_profile = m.SecurityProfile(security_type=security.security_type, uefi_settings=(
                m.UefiSettings(secure_boot_enabled=uefi.secure_boot_enabled, v_tpm_enabled=uefi.v_tpm_enabled)
                if uefi is not None else None))
        plan = getattr(source, "plan", None)
        return m.VirtualMachine(location=s.location, zones=_zones(p.zone), tags={**tags, "shadow-rollout-role": p.role},
                                properties=props, plan=m.Plan(name=plan.name, publisher=plan.publisher,
                                                              product=plan.product) if plan is not None else None)

    def _clean_failed(self, names: Iterable[str]) -> None:
        """A shadow that could not be made leaves no disk or snapshot behind."""
        c, rg = self.client, self.settings.shadow_resource_group
        for suffix, call in (("-osdisk", c.disks.begin_delete), ("-snap", c.snapshots.begin_delete)):
            batch = Batch(c)
            for n in names:
                batch.start(n, "delete", call, rg, f"{n}{suffix}")
            batch.wait()

    def status(self, shadow_ids: Sequence[str]) -> dict[str, ShadowState]:
        from ...domain.errors import NotFound

        out = {}
        for sid in shadow_ids:
            rid = ArmId.parse(sid)
            try:
                with azure_errors("instance_view", sid):
                    view = self.client.virtual_machines.instance_view(rid.resource_group, rid.name)
            except NotFound:
                out[sid] = ShadowState.DELETED
                continue
            codes = {(st.code or "").lower() for st in (view.statuses or [])}
            out[sid] = ShadowState.EVICTED if "powerstate/deallocated" in codes else ShadowState.RUNNING
        return out

    def tagged(self) -> dict[str, str]:
        """The shadow pool's VMs and their ``shadow-rollout-tag`` (the rollout's label), listed by the pool."""
        c, s = self.client, self.settings
        flt = f"'virtualMachineScaleSet/id' eq '{self._pool_id()}'"
        with azure_errors("list_shadows", s.shadow_pool_name):
            return {_text(v.id): (v.tags or {}).get("shadow-rollout-tag", "")
                    for v in c.virtual_machines.list(s.shadow_resource_group, filter=flt)}

    def teardown(self, shadow_ids: Sequence[str]) -> int:
        """Delete the shadows (their OS disks and NICs go with them), then their snapshots; idempotent."""
        c, s = self.client, self.settings
        if not shadow_ids:
            return 0
        flt = f"'virtualMachineScaleSet/id' eq '{self._pool_id()}'"
        with azure_errors("list_shadows", s.shadow_pool_name):
            existing = {_text(v.id).lower(): _text(v.name)
                        for v in c.virtual_machines.list(s.shadow_resource_group, filter=flt)}
        names = [existing[x.lower()] for x in shadow_ids if x.lower() in existing]
        if names:
            with azure_errors("delete_shadows", s.shadow_pool_name):
                c.virtual_machine_scale_sets.begin_delete_instances(
                    s.shadow_resource_group, s.shadow_pool_name,
                    m.VirtualMachineScaleSetVMInstanceRequiredIDs(instance_ids=names), force_deletion=True).result()
        bases = {n[:-2] if n.endswith("-r") else n for n in (ArmId.parse(x).name for x in shadow_ids)}
        batch = Batch(c)
        for b in sorted(bases):
            batch.start(b, "delete_snapshot", c.snapshots.begin_delete, s.shadow_resource_group, f"{b}-snap")
        batch.wait()
        return len(names)


class AzureShadowLoad(_Compute, ShadowLoad):
    """A load generator per shadow, started by Run Command at its source's utilisation."""

    def drive(self, targets: Mapping[str, float]) -> None:
        per_vm = {v: [f"SHADOW_ROLLOUT_LOAD_TARGET={float(t)!r}", *LOAD_GENERATOR] for v, t in targets.items()}
        _run_commands(self.client, list(targets), per_vm)


# ---------------------------------------------------------------------------------------------- helpers
_NOT_RETRIED: tuple[type[Exception], ...] = ()


def _init_not_retried() -> None:
    global _NOT_RETRIED
    from ...domain.errors import Conflict, NotFound, Throttled, TransientError

    _NOT_RETRIED = (NotFound, Conflict, Throttled, TransientError)


_init_not_retried()


def _run_commands(c: ComputeManagementClient, vm_ids: Sequence[str],
                  script: list[str] | Mapping[str, list[str]]) -> dict[str, m.RunCommandResult]:
    batch = Batch(c)
    for v in vm_ids:
        lines = script[v] if isinstance(script, Mapping) else script
        body = m.RunCommandInput(command_id="RunShellScript", script=lines)
        rid = ArmId.parse(v)
        if rid.is_instance:
            batch.start(v, "run_command", c.virtual_machine_scale_set_vms.begin_run_command, rid.resource_group,
                        rid.scale_set, rid.instance, body)
        else:
            batch.start(v, "run_command", c.virtual_machines.begin_run_command, rid.resource_group, rid.name, body)
    return batch.wait_ok()


def _existing(operation: str, resource: str, get: Callable[[], T]) -> T | None:
    """``get()``, or None when ARM answers that the resource does not exist (404). A look before acting: run
    again one step later, a multi-step call sees what its first run saw (``operations.remembered``)."""

    def look() -> T | None:
        try:
            with azure_errors(operation, resource):
                return get()
        except NotFound:
            return None

    found: T | None = remembered(f"{operation}|{resource}", look)
    return found


def _get_run_command(c: ComputeManagementClient, v: str, name: str) -> Any:
    """A managed Run Command of a VM or a Uniform instance, with its instance view (its execution)."""
    rid = ArmId.parse(v)
    if rid.is_instance:
        return c.virtual_machine_scale_set_vm_run_commands.get(rid.resource_group, rid.scale_set, rid.instance, name,
                                                               expand="instanceView")
    return c.virtual_machine_run_commands.get_by_virtual_machine(rid.resource_group, rid.name, name,
                                                                 expand="instanceView")


RUN_COMMAND_ENDED = frozenset({"succeeded", "failed", "timedout", "canceled"})
"""Terminal ``executionState`` values of a managed Run Command (the ExecutionState enum of Microsoft.Compute,
https://learn.microsoft.com/rest/api/compute/virtual-machine-run-commands/get-by-virtual-machine)."""


def _run_command_ended(rc: Any) -> bool:
    view = rc.properties.instance_view if rc.properties else None
    return view is not None and (view.execution_state or "").lower() in RUN_COMMAND_ENDED


def _get_extension(c: ComputeManagementClient, v: str, name: str) -> Any:
    rid = ArmId.parse(v)
    if rid.is_instance:
        return c.virtual_machine_scale_set_vm_extensions.get(rid.resource_group, rid.scale_set, rid.instance, name,
                                                             expand="instanceView")
    return c.virtual_machine_extensions.get(rid.resource_group, rid.name, name, expand="instanceView")


def _extension_ended(ext: Any) -> bool:
    """An extension whose provisioning ended (Succeeded or Failed); one still Creating/Updating has not."""
    state = (ext.properties.provisioning_state if ext.properties else "") or ""
    return state.lower() in ("succeeded", "failed")


def _extension_result(v: str, ext: Any) -> ApplyResult:
    """The outcome of an extension applied by an earlier run, from its resource (its duration is not known)."""
    props = ext.properties
    if (props.provisioning_state or "").lower() == "succeeded":
        return ApplyResult(v, ApplyStatus.OK, 0, 0.0)
    view = props.instance_view
    status = next(iter(view.statuses or []), None) if view is not None else None
    return _failed_apply(v, f"{status.code} {status.message or ''}" if status is not None
                         else "the change's extension failed", 0.0)


def _raise_first(failed: Mapping[str, Exception]) -> None:
    for e in failed.values():
        raise e


def _is_extension_failure(exc: Exception) -> bool:
    """The change's own command failed on the VM (ARM: VMExtensionProvisioningError)."""
    cause = exc.__cause__
    return isinstance(cause, HttpResponseError) and error_code(cause) == "VMExtensionProvisioningError"


def _failed_apply(vm_id: str, message: str, seconds: float) -> ApplyResult:
    code = EXIT_IN_MESSAGE.search(message)
    exit_code = int(code.group(1)) if code else 1
    if exit_code == TIMEOUT_EXIT:
        return ApplyResult(vm_id, ApplyStatus.TIMEOUT, None, seconds, "the change's command timed out")
    return ApplyResult(vm_id, ApplyStatus.FAILED, exit_code, seconds, message[:200])


def _script(change: ChangeSpec) -> list[str]:
    script = change.payload.get("script", "")
    return script if isinstance(script, list) else [str(script) or "true"]


def _extension(change: ChangeSpec, timeout: float, location: str) -> tuple[str, m.VirtualMachineExtension]:
    """The change as an extension: the payload may name publisher/type/version; the command is bounded."""
    p = change.payload
    publisher = p.get("publisher", CHANGE_EXTENSION[0])
    kind = p.get("type", CHANGE_EXTENSION[1])
    version = p.get("type_handler_version", CHANGE_EXTENSION[2])
    command = "\n".join(_script(change))
    settings = dict(p.get("settings", {}))
    settings["commandToExecute"] = f"timeout {round(timeout * 60)} sh -c {shlex.quote(command)}"
    name = _resource_name(p.get("name", f"shadow-rollout-{change.change_id}"))
    return name, m.VirtualMachineExtension(location=location, properties=m.VirtualMachineExtensionProperties(
        publisher=publisher, type=kind, type_handler_version=version, auto_upgrade_minor_version=True,
        settings=settings))


def _ext_kwargs(ext: m.VirtualMachineExtension) -> dict[str, Any]:
    props = ext.properties
    assert props is not None
    return {"properties": m.VirtualMachineScaleSetExtensionProperties(
        publisher=props.publisher, type=props.type, type_handler_version=props.type_handler_version,
        auto_upgrade_minor_version=props.auto_upgrade_minor_version, settings=props.settings)}


def _zones(zone: str) -> list[str] | None:
    """A zonal VM's zone, or no ``zones`` at all: Azure refuses ``[""]``."""
    return [zone] if zone else None


def _text(value: Any) -> str:
    """A model field that the SDK may give as one of its string enums."""
    return str(getattr(value, "value", value) or "")


def _image(storage: Any) -> str:
    ref = storage.image_reference if storage else None
    if ref is None:
        return ""
    if ref.id:
        parts = ref.id.split("/")
        low = [x.lower() for x in parts]
        if "images" in low:
            return str(parts[low.index("images") + 1])
        return str(parts[-1])
    return "-".join(x for x in (ref.offer, ref.sku, ref.exact_version or ref.version) if x)


def _os_disk(storage: Any) -> str:
    try:
        return str(storage.os_disk.managed_disk.id)
    except AttributeError as exc:
        raise AzureOperationError("the VM has no managed OS disk in ARM's answer") from exc


def _resource_name(text: str) -> str:
    name = re.sub(r"[^A-Za-z0-9_.-]", "-", text)
    if len(name) > 80:
        name = name[:71] + "-" + hashlib.sha1(text.encode()).hexdigest()[:8]
    return name


def _restored_disk_name(s: SnapshotInfo) -> str:
    """The disk a VM's OS disk is restored to: named for the VM and its snapshot, so a second restore finds it."""
    return _resource_name(f"{ArmId.parse(s.vm_id).name}-restored-{s.snapshot_id.rsplit('/', 1)[-1]}")


def _shadow_names(label: str, plans: Sequence[ShadowPlan]) -> list[str]:
    """Names that a retry of the same plans reproduces (so a second create finds the first's resources)."""
    from ...domain.naming import shadow_name

    out, seen = [], set()
    for p in plans:
        name = shadow_name(label, p)
        while name in seen:
            name += "x"
        seen.add(name)
        out.append(name)
    return out
