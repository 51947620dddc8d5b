#!/bin/sh
# azd predown hook: remove what `azd down` does not (it deletes resource groups only): the operator role's
# assignments on the target resource groups, the subscription-level Monitoring Reader assignment, and the custom
# role itself, and the event subscription on an existing system topic (not the topic: it is not ours). The fleet's
# resource groups and everything in them are left alone. Needs the Azure CLI.
set -eu
: "${SHADOW_ROLLOUT_IDENTITY_PRINCIPAL_ID:?nothing was provisioned}"
subscription="/subscriptions/${AZURE_SUBSCRIPTION_ID:?}"
for scope in $(echo "${SHADOW_ROLLOUT_TARGET_RESOURCE_GROUP_IDS:-}" | tr ',' ' ') \
             "$subscription/resourceGroups/${SHADOW_ROLLOUT_SHADOW_RESOURCE_GROUP:?}"; do
  echo "shadow-rollout: revoking the operator role on $scope"
  az role assignment delete --only-show-errors --assignee "$SHADOW_ROLLOUT_IDENTITY_PRINCIPAL_ID" \
    --role "${SHADOW_ROLLOUT_ROLE_ID:?}" --scope "$scope" || true
done
echo "shadow-rollout: revoking Monitoring Reader on $subscription"
az role assignment delete --only-show-errors --assignee "$SHADOW_ROLLOUT_IDENTITY_PRINCIPAL_ID" \
  --role "Monitoring Reader" --scope "$subscription" || true
echo "shadow-rollout: deleting the custom role"
az role definition delete --only-show-errors --name "$SHADOW_ROLLOUT_ROLE_ID" --scope "$subscription" || true
topic="${SHADOW_ROLLOUT_EXISTING_SYSTEM_TOPIC_ID:-}"
if [ -n "$topic" ]; then
  echo "shadow-rollout: removing the event subscription from the existing system topic"
  az eventgrid system-topic event-subscription delete --only-show-errors --yes \
    --name shadow-rollout-scale-set-writes --resource-group "$(echo "$topic" | cut -d/ -f5)" \
    --system-topic-name "$(echo "$topic" | cut -d/ -f9)" || true
fi
