"""The ARM operations the Azure adapters use and the RBAC actions each needs.

A later issue builds a least-privilege custom role from :data:`REQUIRED_ACTIONS`; ``docs/azure-adapters.md``
explains each entry. Keep this list in step with the adapters (a test checks every operation is listed).
"""

from __future__ import annotations

OPERATIONS: dict[str, tuple[str, ...]] = {
    # inventory and capacity
    "virtual_machine_scale_sets.get": ("Microsoft.Compute/virtualMachineScaleSets/read",),
    "virtual_machine_scale_sets.begin_update": ("Microsoft.Compute/virtualMachineScaleSets/write",),
    "virtual_machine_scale_set_vms.list": ("Microsoft.Compute/virtualMachineScaleSets/virtualMachines/read",),
    "virtual_machine_scale_set_vms.get": ("Microsoft.Compute/virtualMachineScaleSets/virtualMachines/read",),
    "virtual_machines.list": ("Microsoft.Compute/virtualMachines/read",),
    "virtual_machines.get": ("Microsoft.Compute/virtualMachines/read",),
    "virtual_machines.instance_view": ("Microsoft.Compute/virtualMachines/instanceView/read",),
    "virtual_machine_scale_set_vms.get_instance_view": (
        "Microsoft.Compute/virtualMachineScaleSets/virtualMachines/instanceView/read",),
    # the change
    "virtual_machine_run_commands.begin_create_or_update": ("Microsoft.Compute/virtualMachines/runCommands/write",),
    "virtual_machine_run_commands.get_by_virtual_machine": ("Microsoft.Compute/virtualMachines/runCommands/read",),
    "virtual_machine_scale_set_vm_run_commands.begin_create_or_update": (
        "Microsoft.Compute/virtualMachineScaleSets/virtualMachines/runCommands/write",),
    "virtual_machine_scale_set_vm_run_commands.get": (
        "Microsoft.Compute/virtualMachineScaleSets/virtualMachines/runCommands/read",),
    "virtual_machine_extensions.begin_create_or_update": ("Microsoft.Compute/virtualMachines/extensions/write",),
    "virtual_machine_extensions.get": ("Microsoft.Compute/virtualMachines/extensions/read",),
    "virtual_machine_scale_set_vm_extensions.begin_create_or_update": (
        "Microsoft.Compute/virtualMachineScaleSets/virtualMachines/extensions/write",),
    "virtual_machine_scale_set_vm_extensions.get": (
        "Microsoft.Compute/virtualMachineScaleSets/virtualMachines/extensions/read",),
    "virtual_machine_scale_sets.begin_update_instances": (
        "Microsoft.Compute/virtualMachineScaleSets/manualUpgrade/action",),
    # scripts: shadow load and post-rollback script
    "virtual_machines.begin_run_command": ("Microsoft.Compute/virtualMachines/runCommand/action",),
    "virtual_machine_scale_set_vms.begin_run_command": (
        "Microsoft.Compute/virtualMachineScaleSets/virtualMachines/runCommand/action",),
    # snapshots, disks, restore
    "snapshots.begin_create_or_update": ("Microsoft.Compute/snapshots/write", "Microsoft.Compute/disks/read"),
    "snapshots.list_by_resource_group": ("Microsoft.Compute/snapshots/read",),
    "snapshots.begin_delete": ("Microsoft.Compute/snapshots/delete",),
    "disks.begin_create_or_update": ("Microsoft.Compute/disks/write", "Microsoft.Compute/snapshots/read"),
    "disks.begin_delete": ("Microsoft.Compute/disks/delete",),
    "virtual_machines.begin_deallocate": ("Microsoft.Compute/virtualMachines/deallocate/action",),
    "virtual_machines.begin_update": ("Microsoft.Compute/virtualMachines/write", "Microsoft.Compute/disks/write"),
    "virtual_machines.begin_start": ("Microsoft.Compute/virtualMachines/start/action",),
    "virtual_machine_scale_set_vms.begin_update": (
        "Microsoft.Compute/virtualMachineScaleSets/virtualMachines/write", "Microsoft.Compute/disks/read"),
    "virtual_machine_scale_set_vms.begin_reimage": (
        "Microsoft.Compute/virtualMachineScaleSets/virtualMachines/reimage/action",),
    # the shadow pool
    "virtual_machine_scale_sets.begin_create_or_update": ("Microsoft.Compute/virtualMachineScaleSets/write",),
    "virtual_machines.begin_create_or_update": (
        "Microsoft.Compute/virtualMachines/write", "Microsoft.Compute/disks/write",
        "Microsoft.Network/networkInterfaces/write", "Microsoft.Network/virtualNetworks/subnets/join/action"),
    "virtual_machine_scale_sets.begin_delete_instances": (
        "Microsoft.Compute/virtualMachineScaleSets/delete/action", "Microsoft.Compute/virtualMachines/delete",
        "Microsoft.Compute/disks/delete", "Microsoft.Network/networkInterfaces/delete"),
    # telemetry
    "metrics.query_resources": ("Microsoft.Insights/metrics/read",),
    "logs.query_workspace": ("Microsoft.OperationalInsights/workspaces/query/read",
                             "Microsoft.OperationalInsights/workspaces/read"),
}
"""SDK call -> the RBAC actions it needs."""

REQUIRED_ACTIONS: tuple[str, ...] = tuple(sorted({a for actions in OPERATIONS.values() for a in actions}))
"""Every control-plane action the adapters need: the custom role's ``actions``."""

DATA_ACTIONS: tuple[str, ...] = (
    "Microsoft.Storage/storageAccounts/tableServices/tables/entities/read",
    "Microsoft.Storage/storageAccounts/tableServices/tables/entities/write",
    "Microsoft.Storage/storageAccounts/tableServices/tables/entities/add/action",
    "Microsoft.Storage/storageAccounts/tableServices/tables/entities/update/action",
    "Microsoft.Storage/storageAccounts/tableServices/tables/entities/delete",
    "Microsoft.ServiceBus/namespaces/messages/send/action",
)
"""Data-plane actions (rollout store, bus): the custom role's ``dataActions``."""
