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

// health_probes.kql: one row per probe, Healthy_b true or false. The guest kit's probe (guest/health-probe.sh)
// writes one CSV line a minute to a local log that the Azure Monitor agent collects through the data collection
// rule below (a text-log data source with a transformation into this table: "Collect logs from a text file with
// Azure Monitor Agent", learn.microsoft.com/azure/azure-monitor/agents/data-collection-log-text). _ResourceId is
// filled in by Azure Monitor for data an agent collects from a VM.
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

// VM insights: the guest's performance counters into InsightsMetrics, error-level syslog into Syslog, and the
// guest kit's health-probe log into AppHealthProbe_CL. Associate it with the fleet's VMs (and the shadow pool) as
// docs/deploy.md shows; the agent sends Heartbeat.
resource vmInsights 'Microsoft.Insights/dataCollectionRules@2023-03-11' = {
  name: dataCollectionRuleName
  location: location
  tags: tags
  kind: 'Linux'
  dependsOn: [ healthTable ]
  properties: {
    streamDeclarations: {
      'Custom-HealthProbeText': {
        columns: [
          { name: 'TimeGenerated', type: 'datetime' }
          { name: 'RawData', type: 'string' }
        ]
      }
    }
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
      logFiles: [
        {
          name: 'healthProbeLog'
          streams: [ 'Custom-HealthProbeText' ]
          filePatterns: [ '/var/log/shadow-rollout/health-probe-*.log' ]
          format: 'text'
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
      {
        // guest/health-probe.sh writes "<ISO time>,<true|false>,<probe URL>"
        streams: [ 'Custom-HealthProbeText' ]
        destinations: [ 'workspace' ]
        transformKql: 'source | extend d = split(RawData, ",") | project TimeGenerated = todatetime(d[0]), Healthy_b = tobool(d[1]), Probe_s = tostring(d[2])'
        outputStream: 'Custom-AppHealthProbe_CL'
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
