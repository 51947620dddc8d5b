"""A fleet in two regions: each VM's metrics come from its own region's endpoint, as getBatch requires
(https://learn.microsoft.com/azure/azure-monitor/metrics/migrate-to-batch-api: ``Host: <region>.metrics...``;
azure-monitor-querymetrics' ``MetricsClient``: "The region should match the region of the requested resources").
And blank data disks (``createOption: Empty``) as the stand-in serves them."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.compute import models as m

from shared.adapters.azure.telemetry import AzureTelemetry
from shared.adapters.simulator.adapters import SimTelemetry, to_datetime
from shared.adapters.simulator.standin import AzureStandIn
from shared.adapters.simulator.standin.backend import standin_settings
from shared.domain.errors import AzureOperationError, ShadowRolloutError
from shared.domain.model import SIGNALS

from .conftest import API, SMALL_FLEET, Azure, make_world

SUB = "/subscriptions/00000000-0000-4000-8000-00000000c0de"
WEB = [f"{SUB}/resourceGroups/rg-fleet/providers/Microsoft.Compute/virtualMachines/web_{k}" for k in range(4)]
APIS = [f"{API}/virtualMachines/{k}" for k in range(3)]
TWO_REGIONS = {"fleet": {"region": "eastus", "scale_sets": [
    SMALL_FLEET["fleet"]["scale_sets"][0],
    {**SMALL_FLEET["fleet"]["scale_sets"][1], "region": "westeurope"}]}}


@pytest.fixture
def standin() -> AzureStandIn:
    s = AzureStandIn(make_world(TWO_REGIONS)).start_in_process()
    s.world.clock.now = 60.0
    return s


def test_each_vm_is_queried_at_its_regions_metrics_endpoint(standin: AzureStandIn) -> None:
    settings = replace(standin_settings(standin), regions=("eastus", "westeurope"))
    ids = [WEB[0], APIS[0], WEB[1], APIS[1]]
    telemetry = AzureTelemetry(settings)
    got = telemetry.signals(ids, to_datetime(30.0), to_datetime(50.0))
    want = SimTelemetry(standin.world).signals(ids, to_datetime(30.0), to_datetime(50.0))
    for k in SIGNALS:
        np.testing.assert_allclose(got.signals[k], want.signals[k], equal_nan=True)
    batches = [p for mth, p in standin.requests if mth == "POST" and p.endswith("metrics:getBatch")]
    assert sorted(p.split("/")[2] for p in batches) == ["eastus", "westeurope"]
    # where the regions were learnt: one list per region of VMs and of scale sets, not a read per VM
    lists = [p for mth, p in standin.requests if mth == "GET" and "/locations/" in p]
    assert len(lists) == 4
    telemetry.signals(ids, to_datetime(40.0), to_datetime(55.0))
    assert len([p for mth, p in standin.requests if mth == "GET" and "/locations/" in p]) == 4, "learnt once"


def test_a_batch_sent_to_another_regions_endpoint_is_refused_naming_the_right_one(standin: AzureStandIn) -> None:
    """The adapter of a single region (no SHADOW_ROLLOUT_REGIONS) asks eastus for westeurope's VMs."""
    with pytest.raises(AzureOperationError, match=r"westeurope\.metrics\.monitor\.azure\.com"):
        AzureTelemetry(standin_settings(standin)).signals([APIS[0]], to_datetime(30.0), to_datetime(50.0))


def test_a_vm_in_none_of_the_configured_regions_is_a_clear_error(standin: AzureStandIn) -> None:
    settings = replace(standin_settings(standin), regions=("eastus", "northeurope"))
    with pytest.raises(ShadowRolloutError, match=r"virtualMachines/0 is in none of the configured regions"):
        AzureTelemetry(settings).signals([WEB[0], APIS[0]], to_datetime(30.0), to_datetime(50.0))


def test_the_regional_endpoints_follow_the_documented_host_pattern() -> None:
    from shared.adapters.azure.clients import AzureSettings

    s = AzureSettings.from_environment({"AZURE_SUBSCRIPTION_ID": "sub", "SHADOW_ROLLOUT_LOCATION": "eastus",
                                        "SHADOW_ROLLOUT_REGIONS": "eastus, westeurope"})
    assert s.regions == ("eastus", "westeurope")
    assert s.metrics_endpoint("eastus") == "https://eastus.metrics.monitor.azure.com"
    assert s.metrics_endpoint("westeurope") == "https://westeurope.metrics.monitor.azure.com"


def test_an_empty_data_disk_is_created_with_its_size_and_attached_to_an_instance(azure: Azure) -> None:
    c = azure.fleet.client
    disk = c.disks.begin_create_or_update("rg-fleet", "api_0-data-new", m.Disk(
        location="eastus", sku=m.DiskSku(name="Premium_LRS"),
        properties=m.DiskProperties(creation_data=m.CreationData(create_option="Empty"), disk_size_gb=64))).result()
    assert disk.disk_size_gb == 64 and disk.disk_state == "Unattached"
    vm = c.virtual_machine_scale_set_vms.get("rg-fleet", "api", "0")
    vm.storage_profile.data_disks = [m.DataDisk(lun=0, create_option="Attach",
                                                managed_disk=m.ManagedDiskParameters(id=disk.id))]
    c.virtual_machine_scale_set_vms.begin_update("rg-fleet", "api", "0", vm).result()
    [attached] = c.virtual_machine_scale_set_vms.get("rg-fleet", "api", "0").storage_profile.data_disks
    assert attached.managed_disk.id.lower() == disk.id.lower()


def test_an_empty_disk_without_its_size_is_refused_naming_the_field(azure: Azure) -> None:
    with pytest.raises(HttpResponseError) as refused:
        azure.fleet.client.disks.begin_create_or_update("rg-fleet", "blank", m.Disk(
            location="eastus", properties=m.DiskProperties(creation_data=m.CreationData(create_option="Empty")))
        ).result()
    assert refused.value.status_code == 400 and refused.value.error is not None
    assert refused.value.error.target == "properties.diskSizeGB"
    assert "blank" not in " ".join(azure.standin.disks)
