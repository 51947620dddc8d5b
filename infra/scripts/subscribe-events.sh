#!/bin/sh
# azd postdeploy hook. Event Grid validates that a subscription's destination function exists, and
# intake_event_grid exists only once the code is deployed: so the first `azd up` provisions without the Event
# Grid subscriptions, deploys, and then this hook turns them on and provisions once more. Later runs find the
# flag set and do nothing. By hand: `azd env set SHADOW_ROLLOUT_SUBSCRIBE_EVENTS true && azd provision`.
#
# Where the subscription already has its system topic (Azure allows one per source), SHADOW_ROLLOUT_EXISTING_
# SYSTEM_TOPIC_ID names it: the template then makes no topic, and this hook puts the event subscription on the
# existing one, with the filter of infra/modules/fleet-events.bicep (tests/infra checks they agree). It is made
# here, not in Bicep, because a template that deployed into the topic's resource group would have `azd down`
# delete that group. Run on every deploy; `create` replaces the subscription with the same definition.
set -eu
if [ "$(azd env get-value SHADOW_ROLLOUT_SUBSCRIBE_EVENTS 2>/dev/null || true)" = "true" ]; then
  echo "shadow-rollout: Event Grid subscriptions are on"
else
  echo "shadow-rollout: the function exists now; creating the Event Grid subscriptions"
  azd env set SHADOW_ROLLOUT_SUBSCRIBE_EVENTS true
  azd provision --no-prompt
fi
topic="$(azd env get-value SHADOW_ROLLOUT_EXISTING_SYSTEM_TOPIC_ID 2>/dev/null || true)"
[ -n "$topic" ] || exit 0
topic_rg="$(echo "$topic" | cut -d/ -f5)"
topic_name="$(echo "$topic" | cut -d/ -f9)"
function_id="$(azd env get-value SHADOW_ROLLOUT_FUNCTION_APP_ID)"
targets="$(azd env get-value SHADOW_ROLLOUT_TARGET_RESOURCE_GROUP_IDS | tr ',' ' ')"
echo "shadow-rollout: subscribing to the existing system topic $topic_name"
# shellcheck disable=SC2086  # the target resource group ids are one value each
az eventgrid system-topic event-subscription create --only-show-errors \
  --name shadow-rollout-scale-set-writes --resource-group "$topic_rg" --system-topic-name "$topic_name" \
  --endpoint-type azurefunction --endpoint "$function_id/functions/intake_event_grid" --max-events-per-batch 1 \
  --included-event-types Microsoft.Resources.ResourceWriteSuccess --enable-advanced-filtering-on-arrays true \
  --advanced-filter data.operationName StringIn Microsoft.Compute/virtualMachineScaleSets/write \
  --advanced-filter subject StringBeginsWith $targets \
  --event-delivery-schema eventgridschema --max-delivery-attempts 30 --event-ttl 1440
