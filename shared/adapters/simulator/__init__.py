"""The fleet simulator: a virtual clock, failure modes and faults standing in for Azure."""
