"""Compute: scale sets (production and the shadow pool), their instances, and virtual machines."""

from __future__ import annotations

import re
from functools import partial
from typing import Any

import numpy as np

from ....domain.model import ApplyStatus, ChangeSpec
from ..prices import sku_info
from ..world import CLOCK_RESOLUTION, FLEET_RG, SHADOW_RG, SUBSCRIPTION
from .base import (
    TRUSTED_LAUNCH,
    StandInBase,
    _check_zones,
    _HttpError,
    _instance_id,
    _Operation,
    _Response,
    _rid,
)
from .guest import _extension_view, _timeout


class ComputeResources(StandInBase):
    """Scale sets, Uniform instances and VMs: reads, the shadow VM, the model update, restores, power."""

    def _vm_json(self, i: int) -> dict[str, Any]:
        """A production VM (Flexible member or Uniform instance) as ARM shows it."""
        info = self.world.vm_info(i)
        vm_id = self.world.ids[i]
        name = self.world.names[i]
        ss = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{FLEET_RG}/providers/Microsoft.Compute/" \
             f"virtualMachineScaleSets/{info.scale_set}"
        image = {"id": f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{FLEET_RG}/providers/Microsoft.Compute/"
                       f"galleries/fleet/images/{info.image}/versions/latest"}
        disk_id = self._current_os_disk(i)
        storage = {"imageReference": image, "osDisk": {"osType": "Linux", "name": disk_id.rsplit("/", 1)[-1],
                                                      "createOption": "FromImage",
                                                      "managedDisk": {"id": disk_id}},
                   "dataDisks": self._data_disks(i)}
        body: dict[str, Any] = {"id": vm_id, "name": name.replace("/", "_"), "location": self.world.region_of(i),
                                **({"zones": [info.zone]} if info.zone else {})}
        plan = self.plans.get(info.image)
        if plan is not None:
            body["plan"] = plan
        if info.orchestration == "Uniform":
            body.update(type="Microsoft.Compute/virtualMachineScaleSets/virtualMachines",
                        instanceId=name.rsplit("/", 1)[-1], sku={"name": info.sku, "tier": "Standard"},
                        properties={"latestModelApplied": True, "provisioningState": "Succeeded",
                                    "securityProfile": TRUSTED_LAUNCH,
                                    "storageProfile": storage})
        else:
            body.update(type="Microsoft.Compute/virtualMachines",
                        properties={"hardwareProfile": {"vmSize": info.sku}, "storageProfile": storage,
                                    "securityProfile": TRUSTED_LAUNCH,
                                    "virtualMachineScaleSet": {"id": ss}, "provisioningState": "Succeeded"})
        return body

    def _get_scale_set(self, match: dict[str, str], query: dict[str, str], body: Any) -> _Response:
        pool = self.pools.get(_rid(match, "virtualMachineScaleSets", match["ss"]).lower())
        if pool is not None:
            return _Response(200, pool)
        st = self.world.scale_sets[self._scale_set(match["ss"])]
        model = _with_guest_extensions(self.models.get(st.name, {}), st.extensions)
        rows = self.world.inventory(st.name)
        return _Response(200, {
            "id": _rid(match, "virtualMachineScaleSets", st.name), "name": st.name,
            "type": "Microsoft.Compute/virtualMachineScaleSets", "location": self.world.set_regions[st.name],
            "sku": {"name": rows[0].sku if rows else "Standard_D4s_v5", "tier": "Standard", "capacity": st.capacity},
            "properties": {"orchestrationMode": st.orchestration, "provisioningState": "Succeeded",
                           "singlePlacementGroup": st.single_placement_group,
                           "upgradePolicy": {"mode": "Manual"}, "virtualMachineProfile": model or None},
        })

    def _put_scale_set(self, match: dict[str, str], query: dict[str, str], body: Any) -> _Response:
        if match["rg"].lower() != SHADOW_RG.lower():
            raise _HttpError(409, "OperationNotAllowed", "production scale sets are not created by this service")
        props = body["properties"]
        if props.get("orchestrationMode") != "Flexible":
            raise _HttpError(400, "InvalidParameter", "the shadow pool must be a Flexible scale set")
        rid = _rid(match, "virtualMachineScaleSets", match["ss"])
        created = rid.lower() not in self.pools
        pool = {"id": rid, "name": match["ss"], "type": "Microsoft.Compute/virtualMachineScaleSets",
                "location": body["location"], "tags": body.get("tags", {}),
                "properties": {**props, "provisioningState": "Succeeded"}}
        self.pools[rid.lower()] = pool
        return self._lro(201 if created else 200, {**pool, "properties": {**props, "provisioningState": "Creating"}},
                         self._operation(self.now))

    def _patch_scale_set(self, match: dict[str, str], query: dict[str, str], body: Any) -> _Response:
        name = self._scale_set(match["ss"])
        done = self.now
        if "virtualMachineProfile" in (body.get("properties") or {}):
            self.models[name] = body["properties"]["virtualMachineProfile"]
        capacity = (body.get("sku") or {}).get("capacity")
        if capacity is not None:
            # at most 100 in a single placement group, else 1,000 (shared/domain/scale_set_limits.py, with sources)
            top = self.world.scale_sets[name].max_capacity
            if not isinstance(capacity, int) or isinstance(capacity, bool) or not 0 <= capacity <= top:
                raise _HttpError(400, "InvalidParameter", f"sku.capacity must be 0..{top} (got {capacity!r})")
            self._gate("vmss_update", name)
            _, done = self._world_call("vmss_update", name, lambda: self.world.set_capacity(name, capacity))
        current = self._get_scale_set(match, query, None).body
        return self._lro(200, current, self._operation(done))

    def _list_instances(self, match: dict[str, str], query: dict[str, str], body: Any) -> _Response:
        name = self._scale_set(match["ss"])
        if self.world.scale_sets[name].orchestration != "Uniform":
            return _Response(200, {"value": []})
        rows = [self.world.index_of(v.vm_id) for v in self.world.inventory(name)]
        return self._page(rows, query, match)

    def _page(self, rows: list[int], query: dict[str, str], match: dict[str, str]) -> _Response:
        skip = int(query.get("$skiptoken", "0"))
        page = rows[skip:skip + self.page_size]
        out: dict[str, Any] = {"value": [self._vm_json(i) for i in page]}
        if skip + self.page_size < len(rows):
            q = "&".join(f"{k}={v}" for k, v in query.items() if k != "$skiptoken")
            out["nextLink"] = f"{self.url}{self._current_path}?{q}&$skiptoken={skip + self.page_size}"
        return _Response(200, out)

    def _get_instance(self, match: dict[str, str], query: dict[str, str], body: Any) -> _Response:
        self._scale_set(match["ss"])
        return _Response(200, self._vm_json(self._row(_instance_id(match))))

    def _put_instance(self, match: dict[str, str], query: dict[str, str], body: Any) -> _Response:
        """A Uniform instance's one per-instance storage change: its data disks (attach/replace)."""
        vm_id = _instance_id(match)
        i = self._row(vm_id)
        disks = ((body.get("properties") or {}).get("storageProfile") or {}).get("dataDisks")
        if not isinstance(disks, list):
            raise _HttpError(400, "InvalidParameter", "only storageProfile.dataDisks can change on an instance")
        for d in disks:
            disk_id = (d.get("managedDisk") or {}).get("id", "")
            if d.get("createOption") == "Attach" and disk_id.lower() not in self.disks:
                raise _HttpError(404, "NotFound", f"disk {disk_id} not found")
        self.attached[vm_id.lower()] = [{k: v for k, v in d.items()} for d in disks]
        return self._lro(200, self._vm_json(i), self._operation(self.now))

    def _get_instance_view(self, match: dict[str, str], query: dict[str, str], body: Any) -> _Response:
        vm_id = _instance_id(match) if "iid" in match else _rid(match, "virtualMachines", match["vm"])
        i = self._row(vm_id)
        running = self.world.t["exists_from"][i] <= self.now + CLOCK_RESOLUTION < self.world.t["exists_to"][i]
        power = "PowerState/running" if running and vm_id.lower() not in self._deallocated else "PowerState/deallocated"
        view: dict[str, Any] = {"statuses": [
            {"code": "ProvisioningState/succeeded", "level": "Info", "displayStatus": "Provisioning succeeded"},
            {"code": power, "level": "Info", "displayStatus": power.split("/")[1].capitalize()}]}
        if i in self._instance_status:
            view["extensions"] = [self._instance_status[i]]
        return _Response(200, view)

    def _update_instances(self, match: dict[str, str], query: dict[str, str], body: Any) -> _Response:
        """``update_instances``: bring the listed instances to the scale set's model (the change)."""
        name = self._scale_set(match["ss"]) if match["rg"].lower() == FLEET_RG.lower() else match["ss"]
        ids = body["instanceIds"]
        model = self.models.get(name) or self.pools.get(_rid(match, "virtualMachineScaleSets", name).lower(), {}).get(
            "properties", {}).get("virtualMachineProfile")
        if not model:
            raise _HttpError(409, "OperationNotAllowed", "the scale set's model has no change to roll out")
        ext = (model.get("extensionProfile") or {}).get("extensions") or []
        if not ext:
            raise _HttpError(400, "InvalidParameter", "the model names no extension")
        command = ext[-1]["properties"].get("settings", {}).get("commandToExecute", "")
        change = ChangeSpec(ext[-1]["name"], "model-update")
        rows = [self._member(match, name, iid) for iid in ids]
        start, finish, failed = self.now, self.now, False
        timeout = _timeout(command)
        for i in rows:
            results, done = self._run_at(partial(self.world.apply, np.array([i]), change, timeout))
            finish = max(finish, done)
            failed = failed or results[0].status is not ApplyStatus.OK
            self.apply_log[self.world.ids[i].lower()] = (done, "Succeeded" if results[0].status is ApplyStatus.OK
                                                         else "Failed")
            self._instance_status[i] = _extension_view(ext[-1]["name"], results[0].status, results[0].exit_code,
                                                       done)
        error = {"code": "VMExtensionProvisioningError",
                 "message": "One or more instances failed to apply the model's extension"} if failed else None
        return self._lro(202, None, self._operation(finish, ok=not failed, error=error, start=start), location=True)

    def _member(self, match: dict[str, str], name: str, iid: str) -> int:
        if match["rg"].lower() == SHADOW_RG.lower() or self.world.scale_sets.get(name) is None or \
                self.world.scale_sets[name].orchestration == "Flexible":
            return self._row(f"/subscriptions/{match['sub']}/resourceGroups/{match['rg']}/providers/"
                             f"Microsoft.Compute/virtualMachines/{iid}")
        return self._row(f"{_rid(match, 'virtualMachineScaleSets', name)}/virtualMachines/{iid}")

    def _delete_instances(self, match: dict[str, str], query: dict[str, str], body: Any) -> _Response:
        """Delete VMs of the (Flexible) shadow pool, with their OS disks; one batch, one long-running operation."""
        pool = self.pools.get(_rid(match, "virtualMachineScaleSets", match["ss"]).lower())
        if pool is None:
            raise _HttpError(404, "ResourceNotFound", f"scale set {match['ss']} not found")
        rows = []
        for name in body["instanceIds"]:
            vm = self.vms.get(_rid(match, "virtualMachines", name).lower())
            if vm is None:
                raise _HttpError(404, "ResourceNotFound", f"VM {name} is not in scale set {match['ss']}")
            rows.append(self.world.index_of(vm["id"]))
        _, done = self._run_at(lambda: self.world.delete_shadows(np.array(rows, dtype=np.int64)))
        for name in body["instanceIds"]:
            vm = self.vms.pop(_rid(match, "virtualMachines", name).lower())
            self.disks.pop(vm["os_disk"].lower(), None)
        return self._lro(202, None, self._operation(done), location=True)

    def _list_vms(self, match: dict[str, str], query: dict[str, str], body: Any) -> _Response:
        flt = query.get("$filter", "")
        m = re.search(r"'virtualMachineScaleSet/id'\s+eq\s+'([^']+)'", flt)
        if m is None:
            raise _HttpError(400, "InvalidParameter", "list needs $filter='virtualMachineScaleSet/id' eq '<id>'")
        ss_id = m.group(1)
        if ss_id.lower() in self.pools:
            return _Response(200, {"value": [self._shadow_json(v) for v in self.vms.values()
                                             if v["pool"].lower() == ss_id.lower()]})
        name = self._scale_set(ss_id.rsplit("/", 1)[-1])
        if self.world.scale_sets[name].orchestration != "Flexible":
            return _Response(200, {"value": []})
        return self._page([self.world.index_of(v.vm_id) for v in self.world.inventory(name)], query, match)

    def _list_vms_by_location(self, match: dict[str, str], query: dict[str, str], body: Any) -> _Response:
        """``virtualMachines.listByLocation``: the subscription's VMs in one region (production and shadows)."""
        region = match["loc"].lower()
        rows = [i for i in range(self.world.n_production) if self.world.region_of(i).lower() == region
                and self.world.orchestration_of(i) == "Flexible"]
        out = self._page(rows, query, match)
        if region == self.world.region.lower() and "nextLink" not in out.body:
            out.body["value"] += [self._shadow_json(v) for v in self.vms.values()]
        return out

    def _list_scale_sets_by_location(self, match: dict[str, str], query: dict[str, str], body: Any) -> _Response:
        """``virtualMachineScaleSets.listByLocation``: the subscription's scale sets in one region."""
        region = match["loc"].lower()
        sets = [self._get_scale_set({**match, "rg": FLEET_RG, "ss": n}, {}, None).body
                for n, r in self.world.set_regions.items() if r.lower() == region]
        if region == self.world.region.lower():
            sets += list(self.pools.values())
        return _Response(200, {"value": sets})

    def _get_vm(self, match: dict[str, str], query: dict[str, str], body: Any) -> _Response:
        rid = _rid(match, "virtualMachines", match["vm"])
        if rid.lower() in self.vms:
            return _Response(200, self._shadow_json(self.vms[rid.lower()]))
        if rid not in self.world._by_id or match["rg"].lower() == SHADOW_RG.lower():
            raise _HttpError(404, "ResourceNotFound", f"The Resource 'Microsoft.Compute/virtualMachines/{match['vm']}'"
                             f" under resource group '{match['rg']}' was not found.")
        return _Response(200, self._vm_json(self.world.index_of(rid)))

    def _shadow_json(self, vm: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in vm.items() if k not in ("pool", "os_disk", "row")}

    def _put_vm(self, match: dict[str, str], query: dict[str, str], body: Any) -> _Response:
        """Create a shadow: a VM on a disk made from a snapshot of a production VM, in the shadow pool."""
        rid = _rid(match, "virtualMachines", match["vm"])
        if rid in self.world._by_id or rid.lower() in self.vms:
            raise _HttpError(409, "OperationNotAllowed", f"VM {match['vm']} exists; shadows are created once")
        props = body["properties"]
        disk_id = props["storageProfile"]["osDisk"]["managedDisk"]["id"]
        disk = self.disks.get(disk_id.lower())
        if disk is None:
            raise _HttpError(404, "NotFound", f"disk {disk_id} not found")
        draft = self._drafts.get(disk_id.lower())
        if draft is None:
            raise _HttpError(409, "OperationNotAllowed", f"disk {disk_id} is not a shadow disk")
        pool = (props.get("virtualMachineScaleSet") or {}).get("id", "")
        if pool.lower() not in self.pools:
            raise _HttpError(404, "NotFound", f"scale set {pool} not found")
        _check_zones(body, match["vm"], self.world.region)
        disk_security = ((disk["properties"].get("securityProfile") or {}).get("securityType") or "Standard")
        vm_security = ((props.get("securityProfile") or {}).get("securityType") or "Standard")
        if disk_security.lower() != vm_security.lower():
            raise _HttpError(400, "BadRequest", f"Security type of VM '{vm_security}' is not compatible with the "
                             f"security type '{disk_security}' of attached OS Disk.",
                             target="properties.securityProfile.securityType")
        plan = disk["properties"].get("purchasePlan")
        if plan and (body.get("plan") or {}).get("product") != plan.get("product"):
            raise _HttpError(400, "VMMarketplaceInvalidInput", "Creating a virtual machine from Marketplace image or "
                             "a custom image sourced from a Marketplace image requires Plan information in the "
                             "request.", target="plan")
        sku = props["hardwareProfile"]["vmSize"]
        if props.get("priority") == "Spot" and self.spot_vcpu_quota is not None:
            used = sum(sku_info(v["properties"]["hardwareProfile"]["vmSize"]).vcpus for v in self.vms.values()
                       if v["properties"].get("priority") == "Spot")
            need = sku_info(sku).vcpus
            if used + need > self.spot_vcpu_quota:
                raise _HttpError(409, "OperationNotAllowed", "Operation could not be completed as it results in "
                                 "exceeding approved LowPriorityCores quota. Additional details - Location: "
                                 f"{self.world.region}, Current Limit: {self.spot_vcpu_quota}, Current Usage: {used}, "
                                 f"Additional Required: {need}")
        zone = (body.get("zones") or [""])[0]
        spot = props.get("priority") == "Spot"
        vm = {"id": rid, "name": match["vm"], "type": "Microsoft.Compute/virtualMachines", "location": body["location"],
              "zones": body.get("zones"), "tags": body.get("tags", {}),
              "properties": {**props, "provisioningState": "Succeeded"}, "pool": pool, "os_disk": disk_id}
        if spot and not self.world.spot_available(sku):
            return self._lro(201, {**vm, "properties": {**props, "provisioningState": "Creating"}},
                             self._operation(draft.ready, ok=False, error={
                                 "code": "SkuNotAvailable",
                                 "message": f"The requested VM size {sku} is currently not available for Spot in "
                                            f"zone {zone}. Please try another size or deploy to a different location "
                                            "or zone."}))
        self._gate("create_vm", rid)
        _, done = self._world_call("create_vm", rid, lambda: self.world.launch_shadow(
            draft, sku, zone, "skip" if spot else "regular", resource_id=rid))
        vm["row"] = self.world.index_of(rid)
        self.vms[rid.lower()] = vm
        disk["properties"]["diskState"] = "Attached"
        return self._lro(201, {**self._shadow_json(vm), "properties": {**props, "provisioningState": "Creating"}},
                         self._operation(done))

    def _patch_vm(self, match: dict[str, str], query: dict[str, str], body: Any) -> _Response:
        """Only the OS disk swap (restore from a pre-change snapshot) is modelled."""
        rid = _rid(match, "virtualMachines", match["vm"])
        i = self._row(rid)
        os_disk = ((body.get("properties") or {}).get("storageProfile") or {}).get("osDisk") or {}
        new_disk = (os_disk.get("managedDisk") or {}).get("id")
        if not new_disk:
            raise _HttpError(400, "PropertyChangeNotAllowed", "only the OS disk can be changed on this VM here")
        if rid.lower() not in self._deallocated:
            raise _HttpError(409, "OperationNotAllowed", "The OS disk can only be swapped while the VM is deallocated.")
        disk = self.disks.get(new_disk.lower())
        if disk is None:
            raise _HttpError(404, "NotFound", f"disk {new_disk} not found")
        snapshot = disk["properties"]["creationData"]["sourceResourceId"]
        op = self._restore(i, rid, snapshot)
        if op.ok:
            self.os_disks[rid.lower()] = new_disk
        return self._lro(200, self._vm_json(i), op)

    def _restore(self, i: int, vm_id: str, snapshot: str) -> _Operation:
        """The world's restore; a first attempt that the world says failed is answered Failed, the next succeeds."""
        if i in self._restores:  # the retry after a failed first attempt
            return self._operation(self._restores.pop(i))
        self._gate("restore", vm_id)
        world_sid = self.snapshots.get(snapshot.lower(), {}).get("world_id", snapshot)
        _, done = self._world_call("restore", vm_id, lambda: self.world.restore(np.array([i]), [world_sid]))
        failed_at = self.world.restore_first_failure.pop(i, None)
        if failed_at is not None:
            self._restores[i] = done
            return self._operation(failed_at, ok=False, error={
                "code": "InternalExecutionError", "message": "An internal execution error occurred. Please retry."})
        return self._operation(done)

    def _reimage(self, match: dict[str, str], query: dict[str, str], body: Any) -> _Response:
        vm_id = _instance_id(match)
        i = self._row(vm_id)
        taken = self.world.snapshots.get(i, [])
        if not taken and i not in self._restores:
            raise _HttpError(409, "OperationNotAllowed", f"no pre-change snapshot of {vm_id}")
        op = self._restore(i, vm_id, taken[-1][1] if taken else "")
        if op.ok:  # a reimage gives the instance a new OS disk; the old one goes as its deleteOption says
            # (https://learn.microsoft.com/rest/api/compute/virtualmachines/reimage)
            self._reimages[i] = self._reimages.get(i, 0) + 1
            self.os_disks[vm_id.lower()] = f"{self.world.vm_info(i).os_disk_id}_reimage{self._reimages[i]}"
        return self._lro(202, None, op, location=True)

    def _power(self, match: dict[str, str], query: dict[str, str], body: Any) -> _Response:
        rid = _rid(match, "virtualMachines", match["vm"])
        self._row(rid)
        if self._current_path.lower().endswith("/deallocate"):
            self._deallocated.add(rid.lower())
        else:
            self._deallocated.discard(rid.lower())
        return self._lro(202, None, self._operation(self.now), location=True)


def _with_guest_extensions(model: dict[str, Any], extensions: list[str]) -> dict[str, Any]:
    """The scale set's model as ARM returns it: the scenario's VM extensions (the guest prerequisites: the Azure
    Monitor agent by its type, the guest kit by its name), then any the rollout's model update added."""
    known = {"AzureMonitorLinuxAgent": {"name": "AzureMonitorLinuxAgent", "properties": {
        "publisher": "Microsoft.Azure.Monitor", "type": "AzureMonitorLinuxAgent", "typeHandlerVersion": "1.0"}}}
    guest = [known.get(x) or {"name": x, "properties": {"publisher": "Microsoft.Azure.Extensions",
                                                         "type": "CustomScript", "typeHandlerVersion": "2.1"}}
             for x in extensions]
    if not guest:
        return model
    ext = (model.get("extensionProfile") or {}).get("extensions") or []
    return {**model, "extensionProfile": {**(model.get("extensionProfile") or {}), "extensions": [*guest, *ext]}}
