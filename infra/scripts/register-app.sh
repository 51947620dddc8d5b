#!/bin/sh
# azd preprovision hook: the Entra ID app registration that App Service Authentication (authsettingsV2 in
# infra/modules/function-app.bicep) signs callers in with, and its app roles (infra/app-roles.json):
# Rollout.Request, Rollout.Approve, Rollout.Operate. Bicep deploys no app registrations (they live in Entra ID,
# not in a resource group), so the Azure CLI makes it here. Idempotent: an existing registration of the same
# display name is updated. Its client id goes into the azd environment for main.parameters.json.
# SHADOW_ROLLOUT_AUTH_MODE=function-key in the azd environment skips this (docs/deploy.md: function-key mode).
set -eu
: "${AZURE_ENV_NAME:?run inside azd}"
if [ "${SHADOW_ROLLOUT_AUTH_MODE:-app-service}" = "function-key" ]; then
  echo "shadow-rollout: SHADOW_ROLLOUT_AUTH_MODE=function-key: no app registration; callers are recorded as" \
       "the anonymous key holder"
  azd env set SHADOW_ROLLOUT_AUTH_CLIENT_ID ""
  exit 0
fi
name="shadow-rollout-${AZURE_ENV_NAME}"
roles="$(dirname "$0")/../app-roles.json"
app_id=$(az ad app list --display-name "$name" --query "[0].appId" --output tsv --only-show-errors)
if [ -z "$app_id" ]; then
  echo "shadow-rollout: creating the app registration $name with its app roles"
  app_id=$(az ad app create --display-name "$name" --sign-in-audience AzureADMyOrg --app-roles "@$roles" \
    --query appId --output tsv --only-show-errors)
else
  echo "shadow-rollout: updating the app roles of $name"
  az ad app update --id "$app_id" --app-roles "@$roles" --only-show-errors
fi
az ad app update --id "$app_id" --identifier-uris "api://$app_id" --only-show-errors
# an enterprise application (service principal) to assign the roles on; "assignment required" keeps out everyone
# the roles were not granted to
az ad sp show --id "$app_id" --output none --only-show-errors 2>/dev/null || \
  az ad sp create --id "$app_id" --output none --only-show-errors
az ad sp update --id "$app_id" --set appRoleAssignmentRequired=true --only-show-errors
azd env set SHADOW_ROLLOUT_AUTH_CLIENT_ID "$app_id"
