"""Deterministic names for everything a rollout creates: a re-run of an activity (Durable Functions runs each at
least once) finds what the first run created instead of creating it again. A name is made of the rollout, the VM
and the purpose, and fits Azure's naming rules (letters, digits, '-', '_', '.'; at most 64 characters for a VM)."""

from __future__ import annotations

import hashlib

from .model import ShadowPlan

ORDINAL_TAG = "shadow-rollout-ordinal"
"""The tag a shadow's snapshot carries with its place in its rollout's pool (``ShadowPlan.ordinal``): chunks create
shadows at the same time, so the order their requests arrive in says nothing, and the ordinal does."""


def rollout_label(rollout_id: str) -> str:
    """The rollout as resource names and tags carry it (letters, digits and '-', at most 40 characters)."""
    return "".join(c if c.isalnum() or c == "-" else "-" for c in rollout_id)[:40]


def shadow_name(label: str, plan: ShadowPlan) -> str:
    """The shadow VM of ``plan`` in the rollout labelled ``label``: the same plan always gives the same name."""
    h = hashlib.sha1(f"{plan.source_vm_id}|{plan.role}|{plan.sku}|{plan.zone}|{plan.stratum_key}".encode())
    return f"sh-{label[:40]}-{h.hexdigest()[:10]}"
