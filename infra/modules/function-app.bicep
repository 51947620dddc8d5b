// A Function App on its own Flex Consumption plan (why this plan: docs/deploy.md; a Flex plan hosts one app).
// Python 3.11, v2 programming model; every connection uses the user-assigned identity. Used twice: the rollout
// app (Durable Functions over the storage account's task hub) and the trainer (infra/modules/trainer.bicep).
param name string
param planName string
param location string
param tags object
param identityId string
param identityClientId string
param storageAccountName string
param deploymentContainerUrl string
param appInsightsConnectionString string
param instanceMemoryMB int
param maximumInstanceCount int
@description('azd service (azure.yaml) deployed to this app: the rollout app is \'api\', the trainer \'trainer\'.')
param serviceName string = 'api'
@description('App settings the code reads (names in tests/infra/test_app_settings.py); merged with the host\'s own.')
param appSettings object

var hostSettings = {
  // the host's storage (Durable task hub, timers, leases) through the identity, no connection string
  AzureWebJobsStorage__accountName: storageAccountName
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identityClientId
  // Application Insights with Entra ID ingestion (local auth is disabled on the component)
  APPLICATIONINSIGHTS_CONNECTION_STRING: appInsightsConnectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'
}

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  // checkov:skip=CKV_AZURE_225: zone redundancy of Flex Consumption is not offered in every region and bills always-ready instances; a zone outage pauses a rollout (durable state survives), it does not lose one.
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: { name: 'FC1', tier: 'FlexConsumption' }
  properties: { reserved: true }
}

resource app 'Microsoft.Web/sites@2024-04-01' = {
  // checkov:skip=CKV_AZURE_222: public network access stays on: Event Grid delivers to the function over its public endpoint, and the HTTP API is guarded by function keys (docs/deploy.md: App Service authentication and access restrictions as hardening).
  // checkov:skip=CKV_AZURE_17: client certificates would lock out Event Grid's delivery and pipelines that call the API with a function key.
  // checkov:skip=CKV_AZURE_212: Flex Consumption scales to zero between rollouts on purpose; a rollout's state lives in the task hub, so a cold start delays it and loses nothing.
  // checkov:skip=CKV_AZURE_213: a health check path needs an anonymous HTTP route; the app has none, on purpose.
  name: name
  location: location
  tags: union(tags, { 'azd-service-name': serviceName })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: { '${identityId}': {} }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    clientCertEnabled: false
    publicNetworkAccess: 'Enabled'
    siteConfig: {
      minTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
      remoteDebuggingEnabled: false
      appSettings: [for s in items(union(appSettings, hostSettings)): {
        name: s.key
        value: s.value
      }]
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: deploymentContainerUrl
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        instanceMemoryMB: instanceMemoryMB
        maximumInstanceCount: maximumInstanceCount
      }
      runtime: {
        name: 'python'
        version: '3.11'
      }
    }
  }
}

// no publishing with user names and passwords: azd deploys with the signed-in identity
resource ftpCredentials 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: app
  name: 'ftp'
  properties: { allow: false }
}

resource scmCredentials 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: app
  name: 'scm'
  properties: { allow: false }
}

output id string = app.id
output name string = app.name
