// The trainer (trainer/function_app.py): a second Flex Consumption Function App with its own identity and its own
// host storage, so that it holds exactly two data roles on the rollout app's account (docs/operations.md,
// "Retraining"): Storage Blob Data Contributor on the model registry's container, to write versions and move the
// promoted pointer, and Storage Table Data Reader on the rollout store's table, to read recorded rollouts.
// Role ids: https://learn.microsoft.com/azure/role-based-access-control/built-in-roles/storage
param name string
param planName string
param identityName string
param storageAccountName string
param deploymentContainerName string
param location string
param tags object
param appStorageAccountName string
param registryContainerName string
param rolloutTableName string
param appInsightsConnectionString string
param appInsightsName string
param workspaceId string
param instanceMemoryMB int
@description('NCRONTAB schedule of the retraining timer (UTC).')
param retrainSchedule string
@description('Run the retraining timer; off, the trainer only runs on demand.')
param enableRetraining bool
@description('Fewer recorded rollouts than this and no retrain is attempted (the run says so).')
param minRollouts int

var roles = {
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  storageBlobDataContributor: 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'
  storageTableDataReader: '76199698-9eea-4c19-bc75-cec21354c6b6'
  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb'
}

module identity 'identity.bicep' = {
  name: 'trainer-identity'
  params: {
    name: identityName
    location: location
    tags: tags
  }
}

// the trainer host's own account: its timer's locks and its deployment package, nothing of the rollout app's
module hostStorage 'storage.bicep' = {
  name: 'trainer-storage'
  params: {
    name: storageAccountName
    location: location
    tags: tags
    deploymentContainerName: deploymentContainerName
    workspaceId: workspaceId
  }
}

resource appAccount 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: appStorageAccountName
}

resource appBlobs 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' existing = {
  parent: appAccount
  name: 'default'
}

resource registryContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' existing = {
  parent: appBlobs
  name: registryContainerName
}

resource appTables 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' existing = {
  parent: appAccount
  name: 'default'
}

resource rolloutTable 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' existing = {
  parent: appTables
  name: rolloutTableName
}

resource hostAccount 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: appInsightsName
}

resource registryWriter 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(registryContainer.id, identityName, roles.storageBlobDataContributor)
  scope: registryContainer
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataContributor)
    principalId: identity.outputs.principalId
    principalType: 'ServicePrincipal'
    description: 'shadow-rollout trainer: write model versions and move the promoted pointer'
  }
}

resource storeReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(rolloutTable.id, identityName, roles.storageTableDataReader)
  scope: rolloutTable
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageTableDataReader)
    principalId: identity.outputs.principalId
    principalType: 'ServicePrincipal'
    description: 'shadow-rollout trainer: read the recorded rollouts'
  }
}

// the host's own storage (timer locks, deployment package) through the identity, as the rollout app's
resource hostBlobOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storageAccountName, identityName, roles.storageBlobDataOwner)
  scope: hostAccount
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataOwner)
    principalId: identity.outputs.principalId
    principalType: 'ServicePrincipal'
  }
  dependsOn: [hostStorage]
}

resource telemetryPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(appInsights.id, identityName, roles.monitoringMetricsPublisher)
  scope: appInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.monitoringMetricsPublisher)
    principalId: identity.outputs.principalId
    principalType: 'ServicePrincipal'
  }
}

module app 'function-app.bicep' = {
  name: 'trainer-app'
  params: {
    name: name
    planName: planName
    location: location
    tags: tags
    serviceName: 'trainer'
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    storageAccountName: hostStorage.outputs.name
    deploymentContainerUrl: hostStorage.outputs.deploymentContainerUrl
    appInsightsConnectionString: appInsightsConnectionString
    instanceMemoryMB: instanceMemoryMB
    maximumInstanceCount: 40
    appSettings: {
      SHADOW_ROLLOUT_REGISTRY_URL: '${appAccount.properties.primaryEndpoints.blob}${registryContainerName}'
      SHADOW_ROLLOUT_TABLES_ENDPOINT: appAccount.properties.primaryEndpoints.table
      SHADOW_ROLLOUT_TABLE: rolloutTableName
      SHADOW_ROLLOUT_RETRAIN_SCHEDULE: retrainSchedule
      SHADOW_ROLLOUT_MIN_ROLLOUTS: string(minRollouts)
      'AzureWebJobs.retrain_failure_model.Disabled': enableRetraining ? 'false' : 'true'
      AZURE_CLIENT_ID: identity.outputs.clientId
    }
  }
}

output name string = app.outputs.name
output principalId string = identity.outputs.principalId
