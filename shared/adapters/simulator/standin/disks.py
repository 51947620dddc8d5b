"""Managed disks and snapshots: pre-change snapshots, restored disks, the shadows' disks."""

from __future__ import annotations

from typing import Any

import numpy as np

from ....domain.naming import ORDINAL_TAG
from ..world import SHADOW_RG
from .base import (
    TRUSTED_LAUNCH,
    StandInBase,
    _check_zones,
    _creating,
    _HttpError,
    _iso,
    _public,
    _Response,
    _rid,
)


class DiskResources(StandInBase):
    """Snapshots and disks, kept here (the world models OS disks only through their VMs)."""

    def _put_snapshot(self, match: dict[str, str], query: dict[str, str], body: Any) -> _Response:
        props = body["properties"]
        source = props["creationData"]["sourceResourceId"]
        if props["creationData"].get("createOption") != "Copy":
            raise _HttpError(400, "InvalidParameter", "only creationData.createOption=Copy is supported")
        if props.get("incremental") and source.strip("/").split("/")[1].lower() != match["sub"].lower():
            raise _HttpError(400, "InvalidParameter", "An incremental snapshot must be in the subscription of its "
                             f"source disk {source}.", target="properties.creationData.sourceResourceId")
        rid = _rid(match, "snapshots", match["name"])
        if self._is_data_disk(source):  # the world models OS disks only: a data disk's snapshot is bookkeeping
            snap = {"id": rid, "name": match["name"], "type": "Microsoft.Compute/snapshots",
                    "location": body["location"], "tags": body.get("tags", {}),
                    "properties": {**props, "provisioningState": "Succeeded"}}
            self.snapshots[rid.lower()] = snap
            return self._lro(200, _creating(snap), self._operation(self.now))
        owner = self._disk_owner(source)
        snap = {"id": rid, "name": match["name"], "type": "Microsoft.Compute/snapshots", "location": body["location"],
                "tags": body.get("tags", {}), "properties": {**props, "provisioningState": "Succeeded",
                                                              "timeCreated": _iso(self.now),
                                                              **self._disk_lineage(owner)}}
        if match["rg"].lower() == SHADOW_RG.lower():  # step 1 of a shadow
            vm_id = self.world.ids[owner]
            self._gate("snapshot", vm_id)
            tags = body.get("tags") or {}
            draft, _ = self._world_call("snapshot", vm_id, lambda: self.world.begin_shadow(
                owner, tags.get("shadow-rollout-tag", "shadow"), _ordinal(tags.get(ORDINAL_TAG))))
            snap["draft"] = draft
            done = draft.ready
        elif owner in self.world._by_id.values() and owner < self.world.n_production:
            vm_id = self.world.ids[owner]
            self._gate("snapshot", vm_id)
            taken, done = self._world_call("snapshot", vm_id, lambda: self.world.snapshot(
                np.array([owner]), "pre", [rid]))
            if not taken:  # the platform's own retries failed too
                snap["properties"]["provisioningState"] = "Failed"
                self.snapshots[rid.lower()] = snap
                return self._lro(200, _creating(snap), self._operation(done, ok=False, error={
                    "code": "InternalDiskManagementError",
                    "message": f"Snapshot {match['name']} could not be created after internal retries."}))
            snap["world_id"] = rid
        else:
            done = self.now
        self.snapshots[rid.lower()] = snap
        return self._lro(200, _creating(snap), self._operation(done))

    def _disk_lineage(self, owner: int) -> dict[str, Any]:
        """What a copy of a production OS disk carries from it: its security type and purchase plan."""
        out: dict[str, Any] = {"securityProfile": {"securityType": TRUSTED_LAUNCH["securityType"]}}
        plan = self.plans.get(self.world.vm_info(owner).image)
        if plan is not None:
            out["purchasePlan"] = {"name": plan["name"], "publisher": plan["publisher"], "product": plan["product"]}
        return out

    def _disk_owner(self, disk_id: str) -> int:
        for i in range(self.world.n_production):
            if self._current_os_disk(i).lower() == disk_id.lower():
                return i
        raise _HttpError(404, "NotFound", f"source disk {disk_id} not found")

    def _get_snapshot(self, match: dict[str, str], query: dict[str, str], body: Any) -> _Response:
        snap = self.snapshots.get(_rid(match, "snapshots", match["name"]).lower())
        if snap is None:
            raise _HttpError(404, "ResourceNotFound", f"snapshot {match['name']} not found")
        return _Response(200, _public(snap))

    def _list_snapshots(self, match: dict[str, str], query: dict[str, str], body: Any) -> _Response:
        prefix = f"/subscriptions/{match['sub']}/resourcegroups/{match['rg']}/".lower()
        return _Response(200, {"value": [_public(s) for k, s in self.snapshots.items() if k.startswith(prefix)]})

    def _delete_snapshot(self, match: dict[str, str], query: dict[str, str], body: Any) -> _Response:
        existed = self.snapshots.pop(_rid(match, "snapshots", match["name"]).lower(), None)
        if existed is None:
            return _Response(204)
        return self._lro(202, None, self._operation(self.now), location=True)

    def _put_disk(self, match: dict[str, str], query: dict[str, str], body: Any) -> _Response:
        props = body["properties"]
        rid = _rid(match, "disks", match["name"])
        _check_zones(body, match["name"], self.world.region)
        if str(props["creationData"].get("createOption", "")).lower() == "empty":
            return self._put_empty_disk(rid, body)
        source = props["creationData"].get("sourceResourceId") or ""
        snap = self.snapshots.get(source.lower())
        if snap is None:
            raise _HttpError(404, "NotFound", f"source snapshot {source} not found")
        lineage = {k: snap["properties"][k] for k in ("securityProfile", "purchasePlan") if k in snap["properties"]}
        disk = {"id": rid, "name": match["name"], "type": "Microsoft.Compute/disks", "location": body["location"],
                "zones": body.get("zones"), "tags": body.get("tags", {}),
                "properties": {**props, **lineage, "provisioningState": "Succeeded", "diskState": "Unattached"}}
        done = self.now
        if "draft" in snap:  # step 2 of a shadow
            draft = snap["draft"]
            done = self.world.shadow_disk(draft)
            self._drafts[rid.lower()] = draft
        self.disks[rid.lower()] = disk
        return self._lro(200, _creating(disk), self._operation(done, start=self.now))

    def _put_empty_disk(self, rid: str, body: dict[str, Any]) -> _Response:
        """A blank data disk (``createOption: Empty``): its size is required, as ``diskSizeGB`` says for Empty
        (DiskProperties, https://learn.microsoft.com/rest/api/compute/disks/create-or-update)."""
        props = body["properties"]
        size = props.get("diskSizeGB")
        if not isinstance(size, int) or size < 1:
            raise _HttpError(400, "InvalidParameter", "Required parameter 'diskSizeGB' is missing (null) or not a "
                             "positive number: a disk created Empty needs its size.", target="properties.diskSizeGB")
        disk = {"id": rid, "name": rid.rsplit("/", 1)[-1], "type": "Microsoft.Compute/disks",
                "location": body["location"], "zones": body.get("zones"), "tags": body.get("tags", {}),
                "sku": body.get("sku") or {"name": "Premium_LRS", "tier": "Premium"},
                "properties": {**props, "provisioningState": "Succeeded", "diskState": "Unattached",
                               "diskSizeBytes": size * 2**30}}
        self.disks[rid.lower()] = disk
        return self._lro(200, _creating(disk), self._operation(self.now, start=self.now))

    def _get_disk(self, match: dict[str, str], query: dict[str, str], body: Any) -> _Response:
        disk = self.disks.get(_rid(match, "disks", match["name"]).lower())
        if disk is None:
            raise _HttpError(404, "ResourceNotFound", f"disk {match['name']} not found")
        return _Response(200, disk)

    def _delete_disk(self, match: dict[str, str], query: dict[str, str], body: Any) -> _Response:
        rid = _rid(match, "disks", match["name"]).lower()
        disk = self.disks.get(rid)
        if disk is None:
            return _Response(204)
        if disk["properties"].get("diskState") == "Attached":
            raise _HttpError(409, "OperationNotAllowed", f"Disk {match['name']} is attached to a VM.")
        del self.disks[rid]
        self._drafts.pop(rid, None)
        return self._lro(202, None, self._operation(self.now), location=True)


def _ordinal(tag: Any) -> int | None:
    """The shadow's place in its pool from its snapshot's tag (the simulator's adapter passes the plan's own), so
    the shadow gets the same number, and so the same draws, on both backends whatever order the chunks' requests
    arrive in; a snapshot without it (or with any other value: tags are free text to Azure) is numbered in call
    order."""
    text = str(tag) if tag is not None else ""
    return int(text) if text.isdigit() and int(text) > 0 else None
