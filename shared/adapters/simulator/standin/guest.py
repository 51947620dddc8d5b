"""The guest side: managed and action Run Commands and VM extensions (the change, the load generator, scripts)."""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from ....domain.model import ApplyStatus, ChangeSpec
from ..world import CLOCK_RESOLUTION
from .base import (
    DEFAULT_TIMEOUT_MINUTES,
    StandInBase,
    _HttpError,
    _instance_id,
    _iso,
    _Response,
    _rid,
    _without_view,
)

LOAD_TARGET = re.compile(r"SHADOW_ROLLOUT_LOAD_TARGET=([0-9.]+)")
TIMEOUT_PREFIX = re.compile(r"^\s*timeout\s+(\d+)\s")


class GuestCommands(StandInBase):
    """Run Commands and extensions of VMs and Uniform instances."""

    def _target(self, match: dict[str, str]) -> tuple[str, int]:
        vm_id = _instance_id(match) if "iid" in match else _rid(match, "virtualMachines", match["vm"])
        i = self._row(vm_id)
        # the runner keeps time in datetimes (microseconds): allow that much
        if not (self.world.t["exists_from"][i] <= self.now + CLOCK_RESOLUTION < self.world.t["exists_to"][i]):
            raise _HttpError(409, "OperationNotAllowed", f"{vm_id} is not running")
        return vm_id, i

    def _action_run_command(self, match: dict[str, str], query: dict[str, str], body: Any) -> _Response:
        """Action Run Command: the load generator on a shadow, or a script (the post-rollback one)."""
        vm_id, i = self._target(match)
        busy = self._action_busy.get(vm_id.lower())
        if busy is not None and self.now + CLOCK_RESOLUTION < busy:
            raise _HttpError(409, "Conflict", "Run command extension execution is in progress. Please wait for "
                             "completion before invoking a run command.")
        if body.get("commandId") != "RunShellScript" or not isinstance(body.get("script"), list):
            raise _HttpError(400, "InvalidParameter", "commandId must be RunShellScript with a script (list of lines)")
        script = "\n".join(body["script"])
        load = LOAD_TARGET.search(script)
        if load:
            target = float(load.group(1))
            _, done = self._run_at(lambda: self.world.drive(np.array([i]), np.array([target])))
            out, ok = f"load generator started at utilisation {target}", True
        else:
            res, done = self._run_at(lambda: self.world.run_script(np.array([i])))
            ok = res[0][1]
            out = "ok" if ok else "curl: (7) Failed to connect to localhost port 80"
        rc = 0 if ok else 1
        self._action_busy[vm_id.lower()] = done
        result = {"value": [{"code": "ComponentStatus/StdOut/succeeded", "level": "Info",
                             "displayStatus": "Provisioning succeeded", "message": f"{out}\nshadow-rollout-exit={rc}"},
                            {"code": "ComponentStatus/StdErr/succeeded", "level": "Info",
                             "displayStatus": "Provisioning succeeded", "message": ""}]}
        return self._lro(202, None, self._operation(done, result=result), location=True)

    def _put_run_command(self, match: dict[str, str], query: dict[str, str], body: Any) -> _Response:
        """Managed Run Command: the change itself (kind ``run-command``)."""
        vm_id, i = self._target(match)
        props = body["properties"]
        if not isinstance((props.get("source") or {}).get("script"), str):
            raise _HttpError(400, "InvalidParameter", "properties.source.script (a string) is required")
        timeout = float(props.get("timeoutInSeconds") or DEFAULT_TIMEOUT_MINUTES * 60) / 60.0
        self._gate("apply:run-command", vm_id)
        start = self.now
        results, done = self._world_call("apply:run-command", vm_id, lambda: self.world.apply(
            np.array([i]), ChangeSpec(match["name"], "run-command"), timeout))
        r = results[0]
        state = {ApplyStatus.OK: "Succeeded", ApplyStatus.FAILED: "Failed", ApplyStatus.TIMEOUT: "TimedOut"}[r.status]
        self.apply_log[vm_id.lower()] = (done, "Succeeded" if r.status is ApplyStatus.OK else "Failed")
        rid = f"{vm_id}/runCommands/{match['name']}"
        resource = {"id": rid, "name": match["name"], "location": body.get("location", self.world.region),
                    "type": "Microsoft.Compute/virtualMachines/runCommands",
                    "properties": {**props, "provisioningState": "Succeeded",
                                   "instanceView": {"executionState": state, "exitCode": r.exit_code
                                                    if r.exit_code is not None else -1,
                                                    "output": "", "error": "" if r.exit_code == 0 else "failed",
                                                    "startTime": _iso(start), "endTime": _iso(done)}}}
        self.run_commands[rid.lower()] = resource
        return self._lro(201, _without_view(resource, "Creating"), self._operation(done, start=start))

    def _get_run_command(self, match: dict[str, str], query: dict[str, str], body: Any) -> _Response:
        vm_id = _instance_id(match) if "iid" in match else _rid(match, "virtualMachines", match["vm"])
        res = self.run_commands.get(f"{vm_id}/runCommands/{match['name']}".lower())
        if res is None:
            raise _HttpError(404, "ResourceNotFound", f"run command {match['name']} not found")
        return _Response(200, res if query.get("$expand") == "instanceView" else _without_view(res, "Succeeded"))

    def _put_extension(self, match: dict[str, str], query: dict[str, str], body: Any) -> _Response:
        """A VM extension: the change itself (kind ``extension``)."""
        vm_id, i = self._target(match)
        props = body["properties"]
        for key in ("publisher", "type", "typeHandlerVersion"):
            if not props.get(key):
                raise _HttpError(400, "InvalidParameter", f"properties.{key} is required")
        command = (props.get("settings") or {}).get("commandToExecute", "")
        self._gate("apply:extension", vm_id)
        start = self.now
        results, done = self._world_call("apply:extension", vm_id, lambda: self.world.apply(
            np.array([i]), ChangeSpec(match["name"], "extension"), _timeout(command)))
        r = results[0]
        self.apply_log[vm_id.lower()] = (done, "Succeeded" if r.status is ApplyStatus.OK else "Failed")
        rid = f"{vm_id}/extensions/{match['name']}"
        view = _extension_view(match["name"], r.status, r.exit_code, done)
        resource = {"id": rid, "name": match["name"], "type": "Microsoft.Compute/virtualMachines/extensions",
                    "location": body.get("location", self.world.region),
                    "properties": {**props, "instanceView": view,
                                   "provisioningState": "Succeeded" if r.status is ApplyStatus.OK else "Failed"}}
        self.extensions[rid.lower()] = resource
        error = None if r.status is ApplyStatus.OK else {"code": "VMExtensionProvisioningError",
                                                          "message": view["statuses"][0]["message"]}
        return self._lro(201, _without_view(resource, "Creating"),
                         self._operation(done, ok=error is None, error=error, start=start))

    def _get_extension(self, match: dict[str, str], query: dict[str, str], body: Any) -> _Response:
        vm_id = _instance_id(match) if "iid" in match else _rid(match, "virtualMachines", match["vm"])
        res = self.extensions.get(f"{vm_id}/extensions/{match['name']}".lower())
        if res is None:
            raise _HttpError(404, "ResourceNotFound", f"extension {match['name']} not found")
        return _Response(200, res if query.get("$expand") == "instanceView" else _without_view(
            res, res["properties"]["provisioningState"]))


def _timeout(command: str) -> float:
    m = TIMEOUT_PREFIX.match(command)
    return int(m.group(1)) / 60.0 if m else DEFAULT_TIMEOUT_MINUTES


def _extension_view(name: str, status: ApplyStatus, exit_code: int | None, done: float) -> dict[str, Any]:
    if status is ApplyStatus.OK:
        code, msg = "ProvisioningState/succeeded", "Enable succeeded"
    elif status is ApplyStatus.TIMEOUT:
        code, msg = "ProvisioningState/failed/124", "Enable failed: the command timed out (exit code 124)"
    else:
        code, msg = f"ProvisioningState/failed/{exit_code}", f"Enable failed: exit code {exit_code}"
    return {"name": name, "statuses": [{"code": code, "level": "Info" if status is ApplyStatus.OK else "Error",
                                        "displayStatus": code.split("/")[1], "message": msg, "time": _iso(done)}]}
