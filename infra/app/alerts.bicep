// Azure Monitor alerts on the signals the app logs (shared/telemetry.py): three log search alert
// rules over the Application Insights `traces` table, and one action group that e-mails the operator.
// main.bicep deploys this module only when AZURE_ALERT_EMAIL is set. README.md, "Alerts", says what
// each alert means and what to do.
//
// Log search rules (not metric alerts): the app's signals are log lines that reach Application
// Insights through the Functions host with no SDK in the app; custom metrics would need the
// OpenTelemetry distro. The queries live in ./alerts/*.kql, next to the regexes the tests check
// against the lines the app writes.
//
// Allowed windowSize values (Azure Monitor's log search alert template reference): PT1M, PT5M, PT10M,
// PT15M, PT30M, PT45M, PT1H, PT2H, PT3H, PT4H, PT5H, PT6H, P1D, P2D.
param ruleNamePrefix string
param actionGroupName string
param location string = resourceGroup().location
param tags object = {}
param applicationInsightsName string

param alertEmail string

@minValue(0)
param failureThreshold int = 5

// Must cover three CRM poll intervals; main.bicep restricts it to the allowed windows of PT5M and up.
param pollWindow string = 'PT5M'

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

resource actionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = {
  name: actionGroupName
  location: 'Global'
  tags: tags
  properties: {
    groupShortName: 'cosell-sync'
    enabled: true
    emailReceivers: [
      {
        name: 'operator'
        emailAddress: alertEmail
        useCommonAlertSchema: true
      }
    ]
  }
}

// Messages that failed the host's maxDequeueCount attempts wait in a poison queue until someone
// fixes the cause and replays them. Depth is sampled every poll; Minimum > 0 over 15 minutes means
// no sample in that time saw the queue empty. One alert per queue (dimension `queue`).
resource poisonRule 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: '${ruleNamePrefix}-poison'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'Co-sell sync: poison queue not empty for 15 minutes'
    description: 'Referral events failed every retry and wait in a poison queue. Fix the cause named in the AuditLog (outcome failed) or GET /api/manage/status, then POST /api/manage/replay-poison.'
    severity: 2
    enabled: true
    scopes: [
      applicationInsights.id
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    criteria: {
      allOf: [
        {
          query: loadTextContent('alerts/poison.kql')
          timeAggregation: 'Minimum'
          metricMeasureColumn: 'depth'
          dimensions: [
            {
              name: 'queue'
              operator: 'Include'
              values: [
                '*'
              ]
            }
          ]
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: {
      actionGroups: [
        actionGroup.id
      ]
    }
  }
}

// Records or referrals whose sync failed for good (✖ on the record, outcome failed or rejected in
// the AuditLog), counted once per cause, in both directions.
resource failuresRule 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: '${ruleNamePrefix}-failures'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'Co-sell sync: sync failures above ${failureThreshold} in an hour'
    description: 'More records than the threshold failed to sync in the last hour. GET /api/manage/status and the AuditLog name each reason; fix, then POST /api/manage/resync or replay-poison.'
    severity: 2
    enabled: true
    scopes: [
      applicationInsights.id
    ]
    evaluationFrequency: 'PT15M'
    windowSize: 'PT1H'
    criteria: {
      allOf: [
        {
          query: loadTextContent('alerts/failures.kql')
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: failureThreshold
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: {
      actionGroups: [
        actionGroup.id
      ]
    }
  }
}

// No CRM poll finished cleanly for three poll intervals (rounded up to an allowed window): the CRM ->
// Partner Center direction is stalled, or the app is not running at all.
resource noPollRule 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: '${ruleNamePrefix}-no-poll'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'Co-sell sync: no successful CRM poll'
    description: 'No CRM poll handled all CRM changes during the window (about three poll intervals). Run the doctor, check GET /api/manage/status (crmPoll) and the function app log.'
    severity: 1
    enabled: true
    scopes: [
      applicationInsights.id
    ]
    evaluationFrequency: 'PT5M'
    windowSize: pollWindow
    criteria: {
      allOf: [
        {
          query: loadTextContent('alerts/no-poll.kql')
          timeAggregation: 'Total'
          metricMeasureColumn: 'polls'
          operator: 'LessThan'
          threshold: 1
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: {
      actionGroups: [
        actionGroup.id
      ]
    }
  }
}
