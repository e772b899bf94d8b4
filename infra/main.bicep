// Co-sell sync function app: everything `azd up` provisions.
//
// Scope: SUBSCRIPTION. The template creates (or reuses) its own resource group, `rg-<environment name>`
// unless AZURE_RESOURCE_GROUP / `resourceGroupName` names one, the way the Azure-Samples azd templates do.
// One `azd env new` per deployment then gets its own group, `azd down` removes exactly what `azd up`
// made, and the operator needs no pre-created group. The deploying identity needs, on the
// subscription, Contributor plus the right to create role assignments (Owner, or User Access
// Administrator / Role Based Access Control Administrator), because the template grants data-plane
// roles to the app's identity.
//
// What it builds (modules under ./app):
//   identity.bicep    user-assigned managed identity: the app's only credential for Azure resources
//   storage.bicep     storage account (shared-key access disabled) with the deployment container,
//                     queues `referral-events`, `backfill-pages` + their `-poison` queues, and the app's tables
//   monitoring.bicep  Log Analytics workspace + Application Insights (local auth disabled)
//   keyvault.bicep    Key Vault in RBAC mode (soft delete + purge protection) for the app's secrets
//   rbac.bicep        the identity's data-plane roles, and nothing else
//   api.bicep         Flex Consumption (FC1) plan + Python 3.11 function app + its app settings
//   alerts.bicep      only with an alert e-mail: an action group and three log search alert rules
//
// Secrets: this template creates NO secret values. The app settings below point at four Key Vault
// secrets (partner-center-client-secret, partner-center-refresh-token, dataverse-client-secret,
// salesforce-client-secret) that the operator sets after provisioning (README.md, "Deploy to Azure").
// Until a secret exists its reference does not resolve: App Service then hands the app the literal
// `@Microsoft.KeyVault(...)` text, and whatever needs that secret fails until the value is set.
targetScope = 'subscription'

// ---------------------------------------------------------------------------------------------
// azd
// ---------------------------------------------------------------------------------------------

@minLength(1)
@maxLength(64)
@description('azd environment name (AZURE_ENV_NAME); seeds every resource name.')
param environmentName string

@minLength(1)
@description('Region for all resources. It must offer Flex Consumption: az functionapp list-flexconsumption-locations.')
@metadata({
  azd: {
    type: 'location'
  }
})
param location string

@description('Resource group to create or reuse. Empty: rg-<environmentName>.')
param resourceGroupName string = ''

// ---------------------------------------------------------------------------------------------
// The partner's values (app settings; names in the comments)
// ---------------------------------------------------------------------------------------------

@description('CRM_KIND: which CRM adapter the app uses.')
@allowed([
  'dynamics'
  'salesforce'
])
param crmKind string = 'dynamics'

@minLength(1)
@description('PARTNER_CENTER_TENANT_ID: the partner\'s Microsoft Entra tenant id.')
param partnerCenterTenantId string

@minLength(1)
@description('PARTNER_CENTER_CLIENT_ID: client id of the app registration used for Partner Center (Secure Application Model).')
param partnerCenterClientId string

@description('DATAVERSE_URL: the Dynamics 365 organisation, https://<org>.crm.dynamics.com (CRM_KIND=dynamics).')
param dataverseUrl string = ''

@description('DATAVERSE_TENANT_ID: tenant of the Dynamics 365 environment (CRM_KIND=dynamics).')
param dataverseTenantId string = ''

@description('DATAVERSE_CLIENT_ID: client id of the Dataverse application user (CRM_KIND=dynamics).')
param dataverseClientId string = ''

@description('SALESFORCE_LOGIN_URL: the Salesforce My Domain URL (CRM_KIND=salesforce).')
param salesforceLoginUrl string = ''

@description('SALESFORCE_CLIENT_ID: consumer key of the Salesforce connected app (CRM_KIND=salesforce).')
param salesforceClientId string = ''

@description('SALESFORCE_API_VERSION.')
param salesforceApiVersion string = 'v60.0'

@description('SALESFORCE_STAGE_PENDING: the Opportunity stage of a referral not accepted yet (the on-hold stage).')
param salesforceStagePending string = 'Prospecting'

@description('SALESFORCE_STAGE_ACCEPTED: the Opportunity stage of an accepted referral.')
param salesforceStageAccepted string = 'Qualification'

@description('SALESFORCE_LEAD_STATUS: the Status of a Lead created from a referral.')
param salesforceLeadStatus string = 'Open - Not Contacted'

@description('DISPLAY_CHECKMARK: prefix ✔/✖ on the synced record\'s name.')
param displayCheckmark bool = true

@description('SYNC_COSELL_ONLY: true = leads not yet accepted are not synced from Partner Center.')
param syncCosellOnly bool = false

@description('DEAL_VALUE_FIELD: CRM column for the deal value. Empty = the CRM\'s default (estimatedvalue / Amount).')
param dealValueField string = ''

@description('DEAL_CURRENCY_FIELD: CRM currency column. Empty = the CRM\'s default (transactioncurrencyid / CurrencyIsoCode).')
param dealCurrencyField string = ''

@description('ACCOUNT_COUNTRY_FIELD: CRM account country column. Empty = the CRM\'s default (address1_country / BillingCountryCode).')
param accountCountryField string = ''

@description('CRM_FIELD_MAP: JSON overriding any other CRM column. Empty = none.')
param crmFieldMap string = ''

@minValue(200)
@description('AUDIT_MAX_CHARS: size of the CRM audit field.')
param auditMaxChars int = 4000

@description('CRM_POLL_SCHEDULE: NCRONTAB (UTC) of the CRM -> Partner Center poll.')
param crmPollSchedule string = '0 */1 * * * *'

@description('RECONCILE_SCHEDULE: NCRONTAB (UTC) of the reconciliation.')
param reconcileSchedule string = '0 */15 * * * *'

@minValue(1)
@description('RECONCILE_FIRST_RUN_HOURS: how far back the very first reconciliation looks.')
param reconcileFirstRunHours int = 24

@description('BACKFILL_REFERRALS_PER_MINUTE: pace of POST /api/manage/backfill (a number; decimals allowed). 50 spends about half of Dataverse\'s 6,000 requests / 5 min.')
param backfillReferralsPerMinute string = '50'

@description('BACKFILL_QUEUE_AHEAD_MINUTES: how far ahead of that pace a backfill lists and queues referrals (a number).')
param backfillQueueAheadMinutes string = '10'

@description('CRM_REQUESTS_PER_MINUTE: pace of all CRM calls of one instance (a number). 600 spends half of Dataverse\'s 1,200 a minute per user.')
param crmRequestsPerMinute string = '600'

@minValue(1)
@maxValue(52)
@description('CRM_MAX_CONCURRENT_REQUESTS: CRM calls in flight at once per instance (Dataverse refuses a user\'s 53rd).')
param crmMaxConcurrentRequests int = 16

@minValue(1)
@maxValue(32)
@description('CRM_POLL_CONCURRENCY: CRM records one CRM -> Partner Center poll handles at once (1 = one after another).')
param crmPollConcurrency int = 8

@description('CRM_BUDGET_RESERVE: share of the CRM user\'s budget (as the CRM reports it) the app leaves to others (a number, 0 to 0.49).')
param crmBudgetReserve string = '0.2'

@description('HTTP_TIMEOUT_SECONDS: timeout of every outbound call (a number; decimals allowed).')
param httpTimeoutSeconds string = '15'

@minValue(1)
@maxValue(20)
@description('HTTP_MAX_ATTEMPTS: attempts per outbound call for 429 / 5xx / network errors.')
param httpMaxAttempts int = 6

@description('HTTP_MAX_BACKOFF_SECONDS: cap on one retry wait (a number; decimals allowed).')
param httpMaxBackoffSeconds string = '30'

@minValue(5)
@description('LEASE_SECONDS: how long a referral lease lasts if its holder dies.')
param leaseSeconds int = 60

@description('LEASE_WAIT_SECONDS: how long a worker waits for a referral another worker is syncing (a number).')
param leaseWaitSeconds string = '20'

// ---------------------------------------------------------------------------------------------
// Hosting
// ---------------------------------------------------------------------------------------------

@minValue(40)
@maxValue(1000)
@description('Flex Consumption maximumInstanceCount: the scale-out limit (40-1000, the range the Azure-Samples Flex templates allow).')
param maximumInstanceCount int = 40

// ---------------------------------------------------------------------------------------------
// Alerts (infra/app/alerts.bicep; README.md, "Alerts")
// ---------------------------------------------------------------------------------------------

@description('AZURE_ALERT_EMAIL: address the Azure Monitor alerts are e-mailed to. Empty = no action group and no alert rules.')
param alertEmail string = ''

@minValue(0)
@description('AZURE_ALERT_FAILURE_THRESHOLD: the sync-failure alert fires when more records than this fail for good within one hour.')
param alertFailureThreshold int = 5

// The smallest window a log search alert allows that covers three CRM_POLL_SCHEDULE intervals:
// PT5M for the default one-minute poll (3 min, rounded up). Polling every 5 min? PT15M.
@allowed([
  'PT5M'
  'PT10M'
  'PT15M'
  'PT30M'
  'PT45M'
  'PT1H'
  'PT2H'
  'PT3H'
  'PT4H'
  'PT5H'
  'PT6H'
  'P1D'
  'P2D'
])
@description('AZURE_ALERT_POLL_WINDOW: the no-successful-poll alert fires when no CRM poll succeeded within this window (ISO 8601; at least three poll intervals).')
param alertPollWindow string = 'PT5M'

var instanceMemoryMB = 2048
var abbrs = loadJsonContent('./abbreviations.json')
var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = {
  'azd-env-name': environmentName
}
var functionAppName = '${abbrs.webSitesFunctions}api-${resourceToken}'
// Flex Consumption runs the app from a package that deployments upload to this container.
var deploymentContainerName = 'app-package-${take(functionAppName, 32)}-${take(resourceToken, 7)}'

// Queues and tables the app uses (shared/messages.py, shared/store/clients.py). The Functions host
// moves a message that failed maxDequeueCount times (host.json) to `<queue>-poison`.
var queueNames = [
  'referral-events'
  'referral-events-poison'
  'backfill-pages'
  'backfill-pages-poison'
]
var tableNames = [
  'SyncState'
  'AuditLog'
  'Leases'
  'TokenCache'
  'Operations'
]

// The four Key Vault secrets (names, never values). The operator sets their values after
// provisioning; app settings reference them by versionless URI, so a new version is picked up too.
var secretNames = {
  partnerCenterClientSecret: 'partner-center-client-secret'
  partnerCenterRefreshToken: 'partner-center-refresh-token'
  dataverseClientSecret: 'dataverse-client-secret'
  salesforceClientSecret: 'salesforce-client-secret'
}

resource rg 'Microsoft.Resources/resourceGroups@2024-11-01' = {
  name: !empty(resourceGroupName) ? resourceGroupName : '${abbrs.resourcesResourceGroups}${environmentName}'
  location: location
  tags: tags
}

module identity './app/identity.bicep' = {
  name: 'identity'
  scope: rg
  params: {
    name: '${abbrs.managedIdentityUserAssignedIdentities}api-${resourceToken}'
    location: location
    tags: tags
  }
}

module storage './app/storage.bicep' = {
  name: 'storage'
  scope: rg
  params: {
    name: '${abbrs.storageStorageAccounts}${resourceToken}'
    location: location
    tags: tags
    deploymentContainerName: deploymentContainerName
    queueNames: queueNames
    tableNames: tableNames
  }
}

module monitoring './app/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    logAnalyticsName: '${abbrs.operationalInsightsWorkspaces}${resourceToken}'
    applicationInsightsName: '${abbrs.insightsComponents}${resourceToken}'
    location: location
    tags: tags
  }
}

module keyVault './app/keyvault.bicep' = {
  name: 'keyvault'
  scope: rg
  params: {
    name: '${abbrs.keyVaultVaults}${resourceToken}'
    location: location
    tags: tags
  }
}

module rbac './app/rbac.bicep' = {
  name: 'rbac'
  scope: rg
  params: {
    principalId: identity.outputs.principalId
    storageAccountName: storage.outputs.name
    keyVaultName: keyVault.outputs.name
    applicationInsightsName: monitoring.outputs.applicationInsightsName
  }
}

// Every app setting the code reads (shared/config.py), except the identity-based storage and
// Application Insights settings, which api.bicep adds. Settings the code reads that are absent
// here on purpose are listed in ./app-settings.json ("optional").
var appSettings = {
  CRM_KIND: crmKind

  PARTNER_CENTER_API_URL: 'https://api.partner.microsoft.com/v1.0/engagements'
  PARTNER_CENTER_WEBHOOK_API_URL: 'https://api.partnercenter.microsoft.com/webhooks/v1'
  PARTNER_CENTER_SCOPE: 'https://api.partner.microsoft.com/.default'
  PARTNER_CENTER_WEBHOOK_SCOPE: 'https://api.partnercenter.microsoft.com/.default'
  ENTRA_AUTHORITY_HOST: 'https://login.microsoftonline.com'
  PARTNER_CENTER_TENANT_ID: partnerCenterTenantId
  PARTNER_CENTER_CLIENT_ID: partnerCenterClientId
  PARTNER_CENTER_CLIENT_SECRET: '@Microsoft.KeyVault(SecretUri=${keyVault.outputs.uri}secrets/${secretNames.partnerCenterClientSecret})'
  PARTNER_CENTER_REFRESH_TOKEN: '@Microsoft.KeyVault(SecretUri=${keyVault.outputs.uri}secrets/${secretNames.partnerCenterRefreshToken})'
  REFERRAL_LINK_TEMPLATE: 'https://partner.microsoft.com/dashboard/referrals/v2/inbox?id={id}'

  WEBHOOK_CERT_URL_PREFIXES: 'https://3psostorageacct.blob.core.windows.net/cert/'
  WEBHOOK_CERT_ORGANIZATION: 'Microsoft Corporation'
  // The Functions host refuses HTTP routes starting with "admin": the admin routes live under /api/manage
  // (the app's default too; set here so the deployed value is visible in the portal).
  ADMIN_ROUTE_PREFIX: 'manage'

  DATAVERSE_URL: dataverseUrl
  DATAVERSE_TENANT_ID: dataverseTenantId
  DATAVERSE_CLIENT_ID: dataverseClientId
  DATAVERSE_CLIENT_SECRET: '@Microsoft.KeyVault(SecretUri=${keyVault.outputs.uri}secrets/${secretNames.dataverseClientSecret})'

  SALESFORCE_LOGIN_URL: salesforceLoginUrl
  SALESFORCE_CLIENT_ID: salesforceClientId
  SALESFORCE_CLIENT_SECRET: '@Microsoft.KeyVault(SecretUri=${keyVault.outputs.uri}secrets/${secretNames.salesforceClientSecret})'
  SALESFORCE_API_VERSION: salesforceApiVersion
  SALESFORCE_STAGE_PENDING: salesforceStagePending
  SALESFORCE_STAGE_ACCEPTED: salesforceStageAccepted
  SALESFORCE_LEAD_STATUS: salesforceLeadStatus

  DISPLAY_CHECKMARK: displayCheckmark ? 'true' : 'false'
  SYNC_COSELL_ONLY: syncCosellOnly ? 'true' : 'false'
  DEAL_VALUE_FIELD: dealValueField
  DEAL_CURRENCY_FIELD: dealCurrencyField
  ACCOUNT_COUNTRY_FIELD: accountCountryField
  CRM_FIELD_MAP: crmFieldMap
  AUDIT_MAX_CHARS: string(auditMaxChars)

  CRM_POLL_SCHEDULE: crmPollSchedule
  RECONCILE_SCHEDULE: reconcileSchedule
  RECONCILE_FIRST_RUN_HOURS: string(reconcileFirstRunHours)
  BACKFILL_REFERRALS_PER_MINUTE: backfillReferralsPerMinute
  BACKFILL_QUEUE_AHEAD_MINUTES: backfillQueueAheadMinutes
  CRM_REQUESTS_PER_MINUTE: crmRequestsPerMinute
  CRM_MAX_CONCURRENT_REQUESTS: string(crmMaxConcurrentRequests)
  CRM_BUDGET_RESERVE: crmBudgetReserve
  CRM_POLL_CONCURRENCY: string(crmPollConcurrency)

  HTTP_TIMEOUT_SECONDS: httpTimeoutSeconds
  HTTP_MAX_ATTEMPTS: string(httpMaxAttempts)
  HTTP_MAX_BACKOFF_SECONDS: httpMaxBackoffSeconds
  LEASE_SECONDS: string(leaseSeconds)
  LEASE_WAIT_SECONDS: leaseWaitSeconds
}

module api './app/api.bicep' = {
  name: 'api'
  scope: rg
  params: {
    name: functionAppName
    planName: '${abbrs.webServerFarms}${resourceToken}'
    location: location
    tags: tags
    identityId: identity.outputs.resourceId
    identityClientId: identity.outputs.clientId
    storageAccountName: storage.outputs.name
    deploymentContainerName: deploymentContainerName
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    maximumInstanceCount: maximumInstanceCount
    instanceMemoryMB: instanceMemoryMB
    appSettings: appSettings
  }
  // The app resolves Key Vault references and reaches storage as soon as it starts: grant first.
  dependsOn: [
    rbac
  ]
}

// Only with an address to send them to: no e-mail, no alerts (and nothing to pay for them).
module alerts './app/alerts.bicep' = if (!empty(alertEmail)) {
  name: 'alerts'
  scope: rg
  params: {
    ruleNamePrefix: 'alert-${resourceToken}'
    actionGroupName: '${abbrs.insightsActionGroups}${resourceToken}'
    location: location
    tags: tags
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    alertEmail: alertEmail
    failureThreshold: alertFailureThreshold
    pollWindow: alertPollWindow
  }
}

// Outputs become azd environment values. Names and URLs only, never a key or a secret.
output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_FUNCTION_NAME string = api.outputs.name
output AZURE_FUNCTION_EVENTS_URL string = 'https://${api.outputs.defaultHostName}/api/partner-center/events'
output AZURE_KEY_VAULT_NAME string = keyVault.outputs.name
