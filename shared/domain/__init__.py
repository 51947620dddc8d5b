"""The domain: fleet, strata, policy and decisions. No Azure imports live here."""
