"""Bindings only: each function forwards to a handler in ``shared``."""
