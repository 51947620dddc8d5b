// shadow-rollout: everything `azd up` creates (docs/deploy.md explains each parameter and resource).
// Subscription scope, because the app, the shadow pool and the role assignments on the fleet's resource groups
// span several resource groups, and metrics need a subscription-level read role.
targetScope = 'subscription'

@minLength(1)
@maxLength(40)
@description('azd environment name: makes the resource names (with resourceToken) and tags them.')
param environmentName string

@minLength(1)
@description('Region of the Function App, its storage, Service Bus and monitoring.')
@metadata({ azd: { type: 'location' } })
param location string

@minLength(1)
@description('Comma-separated names of the resource groups (in this subscription) holding the scale sets rollouts may change.')
param targetResourceGroups string

@description('Region of the fleet: the shadow pool is made there (shadows are cloned from snapshots of the fleet\'s disks). Empty: the same as location.')
param fleetLocation string = ''

@description('Resource id of an existing App Configuration store whose key changes start rollouts. Empty: no App Configuration intake.')
param appConfigurationStoreId string = ''

@description('Create the Event Grid subscriptions to the Function App. The function must exist first, so the postdeploy hook (infra/scripts/subscribe-events.sh) turns this on after the first deploy.')
param subscribeEvents bool = false

@description('Resource id of the subscription\'s existing Event Grid system topic (type Microsoft.Resources.Subscriptions). Azure allows one system topic per source, so where the subscription has one, set this: no topic is made, and the postdeploy hook (infra/scripts/subscribe-events.sh) puts the event subscription on this one (the predown hook removes it). Empty: a topic is made in the app\'s resource group.')
param existingSystemTopicId string = ''

@description('Run the trainer app\'s weekly retraining timer (it promotes into the model registry only a better model; docs/operations.md, "Retraining"). Off: the trainer runs only on demand.')
param enableRetraining bool = true

@description('Client id of the Entra ID app registration with the app roles (infra/scripts/register-app.sh). Empty: no App Service Authentication; the HTTP API runs in function-key mode (callers recorded as the anonymous key holder).')
param authClientId string = ''

@description('Intake mapping (docs/intake.md) as JSON. Empty: scope = the target resource groups, scale-set writes reported.')
param intakeConfigJson string = ''

@description('NCRONTAB schedule of the trainer\'s retraining timer (UTC).')
param retrainSchedule string = '0 0 3 * * 0'

@description('NCRONTAB schedule of the janitor timer (UTC): leaked shadows, leases and borrowed instances.')
param janitorSchedule string = '0 */30 * * * *'

@minValue(4)
@description('Fewer recorded rollouts than this and the trainer does not retrain (the run says so).')
param minRollouts int = 20

@allowed([2048, 4096])
@description('Memory of each Flex Consumption instance; scoring and retraining load numpy, scipy and onnxruntime.')
param instanceMemoryMB int = 2048

@minValue(40)
@maxValue(1000)
@description('Upper bound on Flex Consumption instances (40 is the plan\'s minimum setting).')
param maximumInstanceCount int = 40

@minValue(30)
@maxValue(730)
@description('Days Log Analytics keeps telemetry, VM insights and the app\'s logs.')
param logRetentionDays int = 30

@description('Send the subscription\'s Activity log (Administrative) to the workspace: queries/apply_results.kql reads AzureActivity. Turn off if the subscription already sends it to this workspace (at most 5 diagnostic settings per subscription).')
param activityLogToWorkspace bool = true

@description('Address space of the shadow pool\'s own virtual network (isolated: not peered with production).')
param shadowAddressPrefix string = '10.250.0.0/16'

@description('Subnet of the shadow VMs, inside shadowAddressPrefix.')
param shadowSubnetPrefix string = '10.250.0.0/20'

var abbrs = loadJsonContent('abbreviations.json')
var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = { 'azd-env-name': environmentName, application: 'shadow-rollout' }
var targets = split(replace(targetResourceGroups, ' ', ''), ',')
var targetIds = [for rg in targets: '${subscription().id}/resourceGroups/${rg}']
var fleetRegion = empty(fleetLocation) ? location : fleetLocation
var appResourceGroupName = '${abbrs.resourcesResourceGroups}${environmentName}'
var shadowResourceGroupName = '${abbrs.resourcesResourceGroups}${environmentName}-shadow-pool'
var functionAppName = '${abbrs.webSitesFunctions}${resourceToken}'
var requestsTopic = 'rollout-requests'
var requestsSubscription = 'shadow-rollout'
var outcomesTopic = 'rollout-outcomes'
var rolloutTable = 'rollouts'
var registryContainer = 'models'
var shadowPoolName = 'shadow-pool'

resource appRg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: appResourceGroupName
  location: location
  tags: tags
}

resource shadowRg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: shadowResourceGroupName
  location: fleetRegion
  tags: union(tags, { purpose: 'shadow pool: Spot clones of production VMs, deleted after each rollout' })
}

module identity 'modules/identity.bicep' = {
  name: 'identity'
  scope: appRg
  params: {
    name: '${abbrs.managedIdentityUserAssignedIdentities}${resourceToken}'
    location: location
    tags: tags
  }
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  scope: appRg
  params: {
    workspaceName: '${abbrs.operationalInsightsWorkspaces}${resourceToken}'
    appInsightsName: '${abbrs.insightsComponents}${resourceToken}'
    dataCollectionRuleName: '${abbrs.insightsDataCollectionRules}vminsights-${resourceToken}'
    location: location
    tags: tags
    retentionDays: logRetentionDays
  }
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  scope: appRg
  params: {
    name: '${abbrs.storageStorageAccounts}${resourceToken}'
    location: location
    tags: tags
    deploymentContainerName: 'app-package-${resourceToken}'
    tableName: rolloutTable
    registryContainerName: registryContainer
    workspaceId: monitoring.outputs.workspaceResourceId
  }
}

module serviceBus 'modules/servicebus.bicep' = {
  name: 'servicebus'
  scope: appRg
  params: {
    name: '${abbrs.serviceBusNamespaces}${resourceToken}'
    location: location
    tags: tags
    requestsTopic: requestsTopic
    requestsSubscription: requestsSubscription
    outcomesTopic: outcomesTopic
    workspaceId: monitoring.outputs.workspaceResourceId
  }
}

module shadowNetwork 'modules/shadow-network.bicep' = {
  name: 'shadow-network'
  scope: shadowRg
  params: {
    vnetName: '${abbrs.networkVirtualNetworks}shadow-${resourceToken}'
    subnetName: '${abbrs.networkVirtualNetworksSubnets}shadows'
    nsgName: '${abbrs.networkNetworkSecurityGroups}shadows-${resourceToken}'
    location: fleetRegion
    tags: tags
    addressPrefix: shadowAddressPrefix
    subnetPrefix: shadowSubnetPrefix
  }
}

var defaultIntake = {
  scope: {
    resource_groups: targetIds
  }
  resource_writes: {
    action: 'report'
    ignore_callers: [
      identity.outputs.principalId
      identity.outputs.clientId
    ]
  }
}

module functionApp 'modules/function-app.bicep' = {
  name: 'function-app'
  scope: appRg
  params: {
    name: functionAppName
    planName: '${abbrs.webServerFarms}${resourceToken}'
    location: location
    tags: tags
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    storageAccountName: storage.outputs.name
    deploymentContainerUrl: storage.outputs.deploymentContainerUrl
    appInsightsConnectionString: monitoring.outputs.appInsightsConnectionString
    instanceMemoryMB: instanceMemoryMB
    maximumInstanceCount: maximumInstanceCount
    authClientId: authClientId
    appSettings: {
      // who calls the HTTP API: App Service Authentication's principal, or (no app registration) the function key
      SHADOW_ROLLOUT_AUTH_MODE: empty(authClientId) ? 'function-key' : 'app-service'
      // the Service Bus trigger (identity-based connection "ServiceBusConnection") and its topic
      ServiceBusConnection__fullyQualifiedNamespace: serviceBus.outputs.fullyQualifiedNamespace
      ServiceBusConnection__credential: 'managedidentity'
      ServiceBusConnection__clientId: identity.outputs.clientId
      SHADOW_ROLLOUT_REQUESTS_TOPIC: requestsTopic
      SHADOW_ROLLOUT_REQUESTS_SUBSCRIPTION: requestsSubscription
      SHADOW_ROLLOUT_OUTCOMES_TOPIC: outcomesTopic
      SHADOW_ROLLOUT_INTAKE_CONFIG_JSON: empty(intakeConfigJson) ? string(defaultIntake) : intakeConfigJson
      SHADOW_ROLLOUT_JANITOR_SCHEDULE: janitorSchedule
      // the Azure adapters (shared/adapters/azure): DefaultAzureCredential picks the user-assigned identity
      SHADOW_ROLLOUT_BACKEND: 'azure'
      AZURE_CLIENT_ID: identity.outputs.clientId
      AZURE_SUBSCRIPTION_ID: subscription().subscriptionId
      SHADOW_ROLLOUT_FLEET_RESOURCE_GROUP: first(targets)
      SHADOW_ROLLOUT_SHADOW_RESOURCE_GROUP: shadowRg.name
      SHADOW_ROLLOUT_LOCATION: fleetRegion
      SHADOW_ROLLOUT_SHADOW_POOL_NAME: shadowPoolName
      SHADOW_ROLLOUT_SHADOW_SUBNET_ID: shadowNetwork.outputs.subnetId
      SHADOW_ROLLOUT_WORKSPACE_ID: monitoring.outputs.workspaceCustomerId
      SHADOW_ROLLOUT_METRICS_URL: 'https://${fleetRegion}.metrics.monitor.azure.com'
      SHADOW_ROLLOUT_TABLES_ENDPOINT: storage.outputs.tableEndpoint
      SHADOW_ROLLOUT_TABLE: rolloutTable
      // the failure model: the registry's promoted version (the packaged model/ is the fallback)
      SHADOW_ROLLOUT_REGISTRY_URL: '${storage.outputs.blobEndpoint}${registryContainer}'
    }
  }
}

// The trainer: its own Function App, identity and host storage; reads the store, writes the model registry
module trainer 'modules/trainer.bicep' = {
  name: 'trainer'
  scope: appRg
  params: {
    name: '${abbrs.webSitesFunctions}trainer-${resourceToken}'
    planName: '${abbrs.webServerFarms}trainer-${resourceToken}'
    identityName: '${abbrs.managedIdentityUserAssignedIdentities}trainer-${resourceToken}'
    storageAccountName: '${abbrs.storageStorageAccounts}tr${resourceToken}'
    deploymentContainerName: 'trainer-package-${resourceToken}'
    location: location
    tags: tags
    appStorageAccountName: storage.outputs.name
    registryContainerName: registryContainer
    rolloutTableName: rolloutTable
    appInsightsConnectionString: monitoring.outputs.appInsightsConnectionString
    appInsightsName: monitoring.outputs.appInsightsName
    workspaceId: monitoring.outputs.workspaceResourceId
    instanceMemoryMB: 4096
    retrainSchedule: retrainSchedule
    enableRetraining: enableRetraining
    minRollouts: minRollouts
  }
}

// Least privilege: built-in data roles on the app's own resources (storage, Service Bus, monitoring) ...
module appRoles 'modules/app-roles.bicep' = {
  name: 'app-roles'
  scope: appRg
  params: {
    principalId: identity.outputs.principalId
    storageAccountName: storage.outputs.name
    serviceBusName: serviceBus.outputs.name
    requestsTopic: requestsTopic
    requestsSubscription: requestsSubscription
    outcomesTopic: outcomesTopic
    workspaceName: monitoring.outputs.workspaceName
    appInsightsName: monitoring.outputs.appInsightsName
  }
}

// ... Monitoring Reader on the subscription: the metrics batch API (metrics:getBatch) is a subscription-level call
var monitoringReader = '43d0d8ad-25c7-4714-9337-8ba259a9fe05'

resource metricsReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(subscription().id, resourceToken, monitoringReader)
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', monitoringReader)
    principalId: identity.outputs.principalId
    principalType: 'ServicePrincipal'
    description: 'shadow-rollout: read VM platform metrics (metrics:getBatch needs subscription-level read)'
  }
}

// ... and the custom role (exactly the Compute and Network actions of the adapters) on the shadow pool here, and
// on the target resource groups by the postprovision hook (infra/scripts/grant-fleet-access.sh): a role assignment
// deployed into a fleet resource group would make `azd down` delete that resource group.
module rolloutRole 'modules/rollout-role.bicep' = {
  name: 'rollout-role'
  params: {
    roleName: 'shadow-rollout operator (${environmentName})'
    assignableScopes: union(targetIds, [shadowRg.id])
  }
}

module shadowAccess 'modules/role-assignment.bicep' = {
  name: 'shadow-access'
  scope: shadowRg
  params: {
    principalId: identity.outputs.principalId
    roleDefinitionId: rolloutRole.outputs.id
    description: 'shadow-rollout: create and delete Spot shadows, their disks, snapshots and NICs'
  }
}

// The Activity log into the workspace, for the audit query of what ARM recorded per VM (apply_results.kql)
resource activityLog 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = if (activityLogToWorkspace) {
  name: 'shadow-rollout-activity-${resourceToken}'
  properties: {
    workspaceId: monitoring.outputs.workspaceResourceId
    logs: [ { category: 'Administrative', enabled: true } ]
  }
}

// Event Grid: scale-set writes in the target resource groups (one subscription-level system topic, filtered to
// them) and App Configuration key changes. Both topics live in the app's resource group: nothing is deployed into
// a resource group azd did not create, because `azd down` deletes every resource group its deployment touched.
// With an existing system topic (existingSystemTopicId), its event subscription would have to be deployed into that
// topic's resource group, which `azd down` would then delete: the postdeploy hook makes it with `az` instead.
module fleetEvents 'modules/fleet-events.bicep' = if (subscribeEvents && empty(existingSystemTopicId)) {
  name: 'fleet-events'
  scope: appRg
  params: {
    topicName: '${abbrs.eventGridSystemTopics}writes-${resourceToken}'
    functionId: functionApp.outputs.id
    targetResourceGroupIds: targetIds
    tags: tags
  }
}

module appConfigEvents 'modules/app-configuration-events.bicep' = if (subscribeEvents && !empty(appConfigurationStoreId)) {
  name: 'app-configuration-events'
  scope: appRg
  params: {
    topicName: '${abbrs.eventGridSystemTopics}keys-${resourceToken}'
    storeId: appConfigurationStoreId
    functionId: functionApp.outputs.id
    tags: tags
  }
}

// azd reads these into the environment (azd env get-values); the hook and docs/operations.md use them
output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = appRg.name
output SHADOW_ROLLOUT_SHADOW_RESOURCE_GROUP string = shadowRg.name
output AZURE_FUNCTION_APP_NAME string = functionApp.outputs.name
output SHADOW_ROLLOUT_TRAINER_APP_NAME string = trainer.outputs.name
output SHADOW_ROLLOUT_REGISTRY_URL string = '${storage.outputs.blobEndpoint}${registryContainer}'
output SHADOW_ROLLOUT_IDENTITY_PRINCIPAL_ID string = identity.outputs.principalId
output SHADOW_ROLLOUT_ROLE_ID string = rolloutRole.outputs.id
output SHADOW_ROLLOUT_TARGET_RESOURCE_GROUP_IDS string = join(targetIds, ',')
output SHADOW_ROLLOUT_FUNCTION_APP_ID string = functionApp.outputs.id
output SHADOW_ROLLOUT_EXISTING_SYSTEM_TOPIC_ID string = existingSystemTopicId
output SERVICEBUS_NAMESPACE string = serviceBus.outputs.fullyQualifiedNamespace
output SHADOW_ROLLOUT_REQUESTS_TOPIC string = requestsTopic
output SHADOW_ROLLOUT_OUTCOMES_TOPIC string = outcomesTopic
output SHADOW_ROLLOUT_DATA_COLLECTION_RULE_ID string = monitoring.outputs.dataCollectionRuleId
output SHADOW_ROLLOUT_WORKSPACE_ID string = monitoring.outputs.workspaceCustomerId
