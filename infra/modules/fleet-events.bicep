// Scale-set writes in the target resource groups, delivered to the intake_event_grid function. One system topic
// on the subscription (Azure allows one per source: if the subscription has one already, see docs/deploy.md),
// filtered to scale-set writes whose subject lies in a target resource group.
param topicName string
param functionId string
param targetResourceGroupIds array
param tags object

resource topic 'Microsoft.EventGrid/systemTopics@2024-06-01-preview' = {
  name: topicName
  location: 'global'
  tags: tags
  properties: {
    source: subscription().id
    topicType: 'Microsoft.Resources.Subscriptions'
  }
}

resource toFunction 'Microsoft.EventGrid/systemTopics/eventSubscriptions@2024-06-01-preview' = {
  parent: topic
  name: 'shadow-rollout-scale-set-writes'
  properties: {
    destination: {
      endpointType: 'AzureFunction'
      properties: {
        resourceId: '${functionId}/functions/intake_event_grid'
        maxEventsPerBatch: 1
      }
    }
    filter: {
      includedEventTypes: [ 'Microsoft.Resources.ResourceWriteSuccess' ]
      enableAdvancedFilteringOnArrays: true
      advancedFilters: [
        {
          operatorType: 'StringIn'
          key: 'data.operationName'
          values: [ 'Microsoft.Compute/virtualMachineScaleSets/write' ]
        }
        {
          operatorType: 'StringBeginsWith'
          key: 'subject'
          values: targetResourceGroupIds
        }
      ]
    }
    eventDeliverySchema: 'EventGridSchema'
    retryPolicy: {
      maxDeliveryAttempts: 30
      eventTimeToLiveInMinutes: 1440
    }
  }
}
