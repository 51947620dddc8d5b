// Key changes of an existing App Configuration store, delivered to the intake_event_grid function. The system
// topic sits in the app's resource group (beside the store's would put it in a group azd did not create).
param topicName string
param storeId string
param functionId string
param tags object

resource store 'Microsoft.AppConfiguration/configurationStores@2023-03-01' existing = {
  name: last(split(storeId, '/'))
  scope: resourceGroup(split(storeId, '/')[4])
}

resource topic 'Microsoft.EventGrid/systemTopics@2024-06-01-preview' = {
  name: topicName
  location: store.location
  tags: tags
  properties: {
    source: storeId
    topicType: 'Microsoft.AppConfiguration.ConfigurationStores'
  }
}

resource toFunction 'Microsoft.EventGrid/systemTopics/eventSubscriptions@2024-06-01-preview' = {
  parent: topic
  name: 'shadow-rollout-key-changes'
  properties: {
    destination: {
      endpointType: 'AzureFunction'
      properties: {
        resourceId: '${functionId}/functions/intake_event_grid'
        maxEventsPerBatch: 1
      }
    }
    filter: {
      includedEventTypes: [ 'Microsoft.AppConfiguration.KeyValueModified' ]
    }
    eventDeliverySchema: 'EventGridSchema'
    retryPolicy: {
      maxDeliveryAttempts: 30
      eventTimeToLiveInMinutes: 1440
    }
  }
}
