#!/bin/sh
# azd postdeploy hook. Event Grid validates that a subscription's destination function exists, and
# intake_event_grid exists only once the code is deployed: so the first `azd up` provisions without the Event
# Grid subscriptions, deploys, and then this hook turns them on and provisions once more. Later runs find the
# flag set and do nothing. By hand: `azd env set SHADOW_ROLLOUT_SUBSCRIBE_EVENTS true && azd provision`.
set -eu
if [ "$(azd env get-value SHADOW_ROLLOUT_SUBSCRIBE_EVENTS 2>/dev/null || true)" = "true" ]; then
  echo "shadow-rollout: Event Grid subscriptions are on"
  exit 0
fi
echo "shadow-rollout: the function exists now; creating the Event Grid subscriptions"
azd env set SHADOW_ROLLOUT_SUBSCRIBE_EVENTS true
azd provision --no-prompt
