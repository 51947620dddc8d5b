// The Function App's user-assigned identity: every connection (storage, Service Bus, Application Insights, ARM)
// authenticates with it, so no setting holds a key or a connection string with a secret.
param name string
param location string
param tags object

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: name
  location: location
  tags: tags
}

output id string = identity.id
output principalId string = identity.properties.principalId
output clientId string = identity.properties.clientId
