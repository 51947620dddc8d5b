"""Adapters: the simulator (the embedded default), in-memory stores, and the Azure SDK adapters."""
