// Log Analytics (the app's logs and the fleet's VM insights), workspace-based Application Insights (Entra ID
// ingestion only), the VM insights data collection rule the telemetry adapter's queries read (InsightsMetrics,
// Heartbeat, Syslog), and the custom table of the fleet's health probes (AppHealthProbe_CL).
param workspaceName string
param appInsightsName string
param dataCollectionRuleName string
param location string
param tags object
param retentionDays int

resource workspace 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: workspaceName
  location: location
  tags: tags
  properties: {
    sku: { name: 'PerGB2018' }
    retentionInDays: retentionDays
    features: { enableLogAccessUsingOnlyResourcePermissions: true }
  }
}

// health_probes.kql: one row per probe, Healthy_b true or false; the fleet's probe agent (or the Logs Ingestion
// API) writes it. _ResourceId is filled in by Azure Monitor for data an agent collects from a VM.
resource healthTable 'Microsoft.OperationalInsights/workspaces/tables@2022-10-01' = {
  parent: workspace
  name: 'AppHealthProbe_CL'
  properties: {
    retentionInDays: retentionDays
    schema: {
      name: 'AppHealthProbe_CL'
      columns: [
        { name: 'TimeGenerated', type: 'datetime' }
        { name: 'Healthy_b', type: 'boolean' }
        { name: 'Probe_s', type: 'string' }
      ]
    }
  }
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' = {
  name: appInsightsName
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: workspace.id
    DisableLocalAuth: true
    IngestionMode: 'LogAnalytics'
    RetentionInDays: retentionDays
  }
}

// VM insights: the guest's performance counters into InsightsMetrics, and error-level syslog into Syslog.
// Associate it with the fleet's VMs (and the shadow pool) as docs/deploy.md shows; the agent sends Heartbeat.
resource vmInsights 'Microsoft.Insights/dataCollectionRules@2023-03-11' = {
  name: dataCollectionRuleName
  location: location
  tags: tags
  kind: 'Linux'
  properties: {
    description: 'shadow-rollout: VM insights performance counters and error-level syslog of the fleet and its shadows'
    dataSources: {
      performanceCounters: [
        {
          name: 'VMInsightsPerfCounters'
          streams: [ 'Microsoft-InsightsMetrics' ]
          samplingFrequencyInSeconds: 60
          counterSpecifiers: [ '\\VmInsights\\DetailedMetrics' ]
        }
      ]
      syslog: [
        {
          name: 'errorSyslog'
          streams: [ 'Microsoft-Syslog' ]
          facilityNames: [ '*' ]
          logLevels: [ 'Error', 'Critical', 'Alert', 'Emergency' ]
        }
      ]
    }
    destinations: {
      logAnalytics: [
        {
          name: 'workspace'
          workspaceResourceId: workspace.id
        }
      ]
    }
    dataFlows: [
      {
        streams: [ 'Microsoft-InsightsMetrics' ]
        destinations: [ 'workspace' ]
      }
      {
        streams: [ 'Microsoft-Syslog' ]
        destinations: [ 'workspace' ]
      }
    ]
  }
}

output workspaceResourceId string = workspace.id
output workspaceName string = workspace.name
output workspaceCustomerId string = workspace.properties.customerId
output appInsightsName string = appInsights.name
output appInsightsConnectionString string = appInsights.properties.ConnectionString
output dataCollectionRuleId string = vmInsights.id
