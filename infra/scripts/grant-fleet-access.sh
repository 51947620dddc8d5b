#!/bin/sh
# azd postprovision hook: assign the custom role "shadow-rollout operator" to the Function App's identity on each
# target resource group. Done here, not in Bicep, because `azd down` deletes every resource group the deployment
# put a resource in, and a role assignment is a resource in the group it is scoped to: the fleet's groups must
# never be among them. Idempotent (az answers "exists" for an assignment made before). Needs the Azure CLI.
set -eu
: "${SHADOW_ROLLOUT_IDENTITY_PRINCIPAL_ID:?run azd provision first}"
: "${SHADOW_ROLLOUT_ROLE_ID:?run azd provision first}"
: "${SHADOW_ROLLOUT_TARGET_RESOURCE_GROUP_IDS:?run azd provision first}"
for scope in $(echo "$SHADOW_ROLLOUT_TARGET_RESOURCE_GROUP_IDS" | tr ',' ' '); do
  echo "shadow-rollout: granting the operator role on $scope"
  az role assignment create --only-show-errors --output none \
    --assignee-object-id "$SHADOW_ROLLOUT_IDENTITY_PRINCIPAL_ID" --assignee-principal-type ServicePrincipal \
    --role "$SHADOW_ROLLOUT_ROLE_ID" --scope "$scope" \
    --description "shadow-rollout: snapshot, change, restore and scale the fleet's scale sets"
done
