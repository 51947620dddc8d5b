// The shadow pool's own network. Shadows are clones of production VMs with production's configuration, so they
// must not reach production's dependencies (a shadow consuming a production queue would do real work): the
// virtual network is not peered, and the NSG admits no inbound traffic and lets out only what the agents need
// (extensions and Run Command, Azure Monitor) through a NAT gateway: the subnet has no default outbound access.
// Creating a shadow joins this subnet (Microsoft.Network/virtualNetworks/subnets/join/action).
param vnetName string
param subnetName string
param nsgName string
param location string
param tags object
param addressPrefix string
param subnetPrefix string

// Egress only to what Run Command, VM extensions and the Azure Monitor agent need, by service tag
// (https://learn.microsoft.com/azure/virtual-network/service-tags-overview): the region's Storage (extension
// and Run Command packages and output blobs), AzureMonitor (the agent's data collection rules and
// ingestion) and GuestAndHybridManagement (guest agent and extension management). Not AzureCloud: that
// covers production's own PaaS dependencies (queues, databases), which a shadow must never reach. The
// platform endpoint 168.63.129.16 (WireServer) is not filtered by NSGs.
resource nsg 'Microsoft.Network/networkSecurityGroups@2023-11-01' = {
  name: nsgName
  location: location
  tags: tags
  properties: {
    securityRules: [
      {
        name: 'deny-all-inbound'
        properties: {
          priority: 4000
          direction: 'Inbound'
          access: 'Deny'
          protocol: '*'
          sourceAddressPrefix: '*'
          sourcePortRange: '*'
          destinationAddressPrefix: '*'
          destinationPortRange: '*'
        }
      }
      {
        name: 'allow-storage-outbound'
        properties: {
          priority: 100
          direction: 'Outbound'
          access: 'Allow'
          protocol: 'Tcp'
          sourceAddressPrefix: 'VirtualNetwork'
          sourcePortRange: '*'
          destinationAddressPrefix: 'Storage.${location}'
          destinationPortRange: '443'
        }
      }
      {
        name: 'allow-azure-monitor-outbound'
        properties: {
          priority: 110
          direction: 'Outbound'
          access: 'Allow'
          protocol: 'Tcp'
          sourceAddressPrefix: 'VirtualNetwork'
          sourcePortRange: '*'
          destinationAddressPrefix: 'AzureMonitor'
          destinationPortRange: '443'
        }
      }
      {
        name: 'allow-guest-management-outbound'
        properties: {
          priority: 120
          direction: 'Outbound'
          access: 'Allow'
          protocol: 'Tcp'
          sourceAddressPrefix: 'VirtualNetwork'
          sourcePortRange: '*'
          destinationAddressPrefix: 'GuestAndHybridManagement'
          destinationPortRange: '443'
        }
      }
      {
        name: 'deny-internet-outbound'
        properties: {
          priority: 4000
          direction: 'Outbound'
          access: 'Deny'
          protocol: '*'
          sourceAddressPrefix: '*'
          sourcePortRange: '*'
          destinationAddressPrefix: 'Internet'
          destinationPortRange: '*'
        }
      }
    ]
  }
}

resource natIp 'Microsoft.Network/publicIPAddresses@2023-11-01' = {
  name: '${nsgName}-nat-ip'
  location: location
  tags: tags
  sku: { name: 'Standard' }
  properties: {
    publicIPAllocationMethod: 'Static'
    publicIPAddressVersion: 'IPv4'
  }
}

resource nat 'Microsoft.Network/natGateways@2023-11-01' = {
  name: '${nsgName}-nat'
  location: location
  tags: tags
  sku: { name: 'Standard' }
  properties: {
    idleTimeoutInMinutes: 4
    publicIpAddresses: [ { id: natIp.id } ]
  }
}

resource vnet 'Microsoft.Network/virtualNetworks@2023-11-01' = {
  name: vnetName
  location: location
  tags: tags
  properties: {
    addressSpace: { addressPrefixes: [ addressPrefix ] }
    subnets: [
      {
        name: subnetName
        properties: {
          addressPrefix: subnetPrefix
          networkSecurityGroup: { id: nsg.id }
          natGateway: { id: nat.id }
          defaultOutboundAccess: false
        }
      }
    ]
  }
}

output subnetId string = '${vnet.id}/subnets/${subnetName}'
