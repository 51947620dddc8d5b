// Key changes of an existing App Configuration store, delivered to the intake_event_grid function. Deployed at
// the store's resource group: a system topic lives beside its source.
param storeName string
param functionId string
param tags object

resource store 'Microsoft.AppConfiguration/configurationStores@2023-03-01' existing = {
  name: storeName
}

resource topic 'Microsoft.EventGrid/systemTopics@2024-06-01-preview' = {
  name: 'evgt-${storeName}-keys'
  location: store.location
  tags: tags
  properties: {
    source: store.id
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
