// A Function App's storage: the host's own (Durable task hub: queues, tables, blobs; timers' locks), the
// deployment package container of Flex Consumption, and, for the rollout app, the rollout store's table and the
// model registry's container. Entra ID only: shared keys are disabled.
param name string
param location string
param tags object
param deploymentContainerName string
@description('The rollout store\'s table; empty: none (the trainer\'s own account).')
param tableName string = ''
@description('The model registry\'s container (versions and the promoted pointer); empty: none.')
param registryContainerName string = ''
param workspaceId string

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  // checkov:skip=CKV_AZURE_35: Flex Consumption without VNet integration reaches its storage over the public endpoint; access needs Entra ID (shared keys are off). Private endpoints are the optional hardening in docs/deploy.md.
  // checkov:skip=CKV_AZURE_59: same reason as CKV_AZURE_35: the public endpoint stays on, but only Entra ID principals with a data role get in.
  // checkov:skip=CKV_AZURE_206: locally redundant on purpose: the task hub and the rollout records are rebuilt by re-running a rollout; geo-redundancy doubles the cost of a tool that runs in one region.
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: { name: 'Standard_LRS' }
  properties: {
    accessTier: 'Hot'
    allowBlobPublicAccess: false
    allowSharedKeyAccess: false
    allowCrossTenantReplication: false
    defaultToOAuthAuthentication: true
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
    sasPolicy: {
      sasExpirationPeriod: '00.01:00:00'
      expirationAction: 'Log'
    }
  }
}

resource blobs 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: account
  name: 'default'
  properties: {
    deleteRetentionPolicy: { enabled: true, days: 7 }
    containerDeleteRetentionPolicy: { enabled: true, days: 7 }
  }
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobs
  name: deploymentContainerName
  properties: { publicAccess: 'None' }
}

resource registryContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = if (!empty(registryContainerName)) {
  parent: blobs
  name: empty(registryContainerName) ? 'unused' : registryContainerName
  properties: { publicAccess: 'None' }
}

resource tables 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' = {
  parent: account
  name: 'default'
}

resource rolloutTable 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = if (!empty(tableName)) {
  parent: tables
  name: empty(tableName) ? 'unused' : tableName
}

resource queues 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' = {
  parent: account
  name: 'default'
}

// storage logging (CKV_AZURE_33): reads, writes and deletes of queues and tables go to Log Analytics
resource queueDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: queues
  properties: {
    workspaceId: workspaceId
    logs: [
      { category: 'StorageRead', enabled: true }
      { category: 'StorageWrite', enabled: true }
      { category: 'StorageDelete', enabled: true }
    ]
  }
}

resource tableDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: tables
  properties: {
    workspaceId: workspaceId
    logs: [
      { category: 'StorageWrite', enabled: true }
      { category: 'StorageDelete', enabled: true }
    ]
  }
}

output name string = account.name
output deploymentContainerUrl string = '${account.properties.primaryEndpoints.blob}${deploymentContainerName}'
output tableEndpoint string = account.properties.primaryEndpoints.table
output blobEndpoint string = account.properties.primaryEndpoints.blob
