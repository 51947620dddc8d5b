"""``shadow-rollout standin``: the stand-in on a real socket, over HTTPS with a local CA, for anyone's Azure SDK
client with its default bearer-token policy (the one socket-level smoke test; the others call it in-process)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from azure.core.credentials import AccessToken
from azure.core.exceptions import HttpResponseError
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.compute import models as m

from ..conftest import SCENARIOS

OTHER_SUBSCRIPTION_DISK = ("/subscriptions/11111111-1111-4111-8111-111111111111/resourceGroups/x/providers/"
                           "Microsoft.Compute/disks/d")


class AnyToken:
    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken("any-token-will-do", int(time.time()) + 3600)


def test_standin_command_serves_the_scenarios_fleet_over_https(tmp_path: Path) -> None:
    exe = shutil.which("shadow-rollout", path=str(Path(sys.executable).parent))
    assert exe
    log = tmp_path / "azure.jsonl"
    proc = subprocess.Popen([exe, "standin", "--scenario", str(SCENARIOS / "good-change.yaml"), "--azure-log",
                             str(log)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        info = json.loads(proc.stdout.readline())
        assert info["arm"].startswith("https://127.0.0.1:")
        assert set(info) >= {"arm", "metrics", "logs", "ca_bundle", "subscription_id", "resource_groups"}
        client = ComputeManagementClient(AnyToken(), info["subscription_id"],  # type: ignore[arg-type]
                                         base_url=info["arm"], connection_verify=info["ca_bundle"], retry_total=0)
        rg = info["resource_groups"][0]
        web = client.virtual_machine_scale_sets.get(rg, "web")
        assert web.sku is not None and web.sku.capacity and web.sku.capacity > 0
        instances = list(client.virtual_machine_scale_set_vms.list(rg, "api"))
        assert instances and all(i.instance_id for i in instances)
        with pytest.raises(HttpResponseError) as refused:  # a refusal names the offending field
            client.snapshots.begin_create_or_update(rg, "bad", m.Snapshot(
                location="eastus", properties=m.SnapshotProperties(incremental=True, creation_data=m.CreationData(
                    create_option="Copy", source_resource_id=OTHER_SUBSCRIPTION_DISK))))
        assert refused.value.status_code == 400
        assert "subscription" in str(refused.value)
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(records) >= 3
    assert set(records[0]) == {"t", "method", "path", "api_version", "status", "principal", "throttled"}
    assert records[0]["principal"] != "anonymous"  # the bearer token named the caller
