"""Adapters of the ports over the real Azure SDKs (compute, monitor, tables, service bus)."""
