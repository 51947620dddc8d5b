"""shadow-rollout: safe configuration rollouts for Azure VM scale sets."""
