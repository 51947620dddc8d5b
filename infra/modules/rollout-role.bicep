// The custom role "shadow-rollout operator": exactly the Microsoft.Compute and Microsoft.Network actions the Azure
// adapters perform, read from rollout-role-actions.json (tests/infra/test_role.py compares that file with
// shared/adapters/azure/permissions.py). Assignable only at the fleet's resource groups and the shadow pool's.
targetScope = 'subscription'

param roleName string
param assignableScopes array

var actions = loadJsonContent('../rollout-role-actions.json').actions

resource role 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: guid(subscription().id, roleName)
  properties: {
    roleName: roleName
    description: 'Snapshot, change, restore and scale VM scale sets; create and delete Spot shadow VMs with their disks and NICs. Nothing else.'
    type: 'CustomRole'
    permissions: [
      {
        actions: actions
        notActions: []
        dataActions: []
        notDataActions: []
      }
    ]
    assignableScopes: assignableScopes
  }
}

output id string = role.id
