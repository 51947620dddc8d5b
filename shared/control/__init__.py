"""Control: let operators see a rollout's status, approve it at its gate, abort it, and list recent ones."""
