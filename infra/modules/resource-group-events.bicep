// Scale-set writes in one target resource group, delivered to the intake_event_grid function. Deployed at that
// resource group's scope: a resource group's system topic lives in the resource group it watches.
param topicName string
param functionId string
param tags object

resource topic 'Microsoft.EventGrid/systemTopics@2024-06-01-preview' = {
  name: topicName
  location: 'global'
  tags: tags
  properties: {
    source: resourceGroup().id
    topicType: 'Microsoft.Resources.ResourceGroups'
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
      advancedFilters: [
        {
          operatorType: 'StringIn'
          key: 'data.operationName'
          values: [ 'Microsoft.Compute/virtualMachineScaleSets/write' ]
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
