"""The simulator's Azure-shaped face: ARM compute, Azure Monitor metrics and Log Analytics over HTTP."""

from .server import AzureStandIn, ScriptedFault

__all__ = ["AzureStandIn", "ScriptedFault"]
