// Key Vault for the app's secrets, RBAC mode (no access policies), soft delete + purge protection.
// It is created empty: the operator sets partner-center-client-secret, partner-center-refresh-token,
// dataverse-client-secret and salesforce-client-secret after provisioning (README.md, "Deploy to Azure").
// Purge protection means a deleted vault keeps its name for softDeleteRetentionInDays: recover it
// (az keyvault recover) or use a new azd environment before provisioning the same one again.
param name string
param location string = resourceGroup().location
param tags object = {}

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: tenant().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 90
    enablePurgeProtection: true
    enabledForDeployment: false
    enabledForDiskEncryption: false
    enabledForTemplateDeployment: false
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }
}

output name string = vault.name
// https://<name>.vault.azure.net/ (with the trailing slash)
output uri string = vault.properties.vaultUri
