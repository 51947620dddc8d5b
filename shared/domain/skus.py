"""Sizes of VM SKUs: facts about Azure, used by the failure model's features and by the simulator."""

from __future__ import annotations

SKU_SIZES: dict[str, tuple[int, float]] = {
    # sku: (vCPUs, memory GiB), from the Azure VM size documentation
    "Standard_B2s": (2, 4.0), "Standard_B4ms": (4, 16.0),
    "Standard_D2s_v3": (2, 8.0), "Standard_D4s_v3": (4, 16.0),
    "Standard_D2s_v5": (2, 8.0), "Standard_D4s_v5": (4, 16.0), "Standard_D8s_v5": (8, 32.0),
    "Standard_D16s_v5": (16, 64.0), "Standard_D32s_v5": (32, 128.0),
    "Standard_D2as_v5": (2, 8.0), "Standard_D4as_v5": (4, 16.0), "Standard_D8as_v5": (8, 32.0),
    "Standard_D16as_v5": (16, 64.0),
    "Standard_E2s_v5": (2, 16.0), "Standard_E4s_v5": (4, 32.0), "Standard_E8s_v5": (8, 64.0),
    "Standard_E16s_v5": (16, 128.0),
    "Standard_F2s_v2": (2, 4.0), "Standard_F4s_v2": (4, 8.0), "Standard_F8s_v2": (8, 16.0),
    "Standard_F16s_v2": (16, 32.0),
}


def sku_size(sku: str) -> tuple[int, float] | None:
    """(vCPUs, memory GiB), or None for a SKU this build does not know."""
    return SKU_SIZES.get(sku)


def _series(sku: str) -> tuple[str, str] | None:
    """``Standard_D4s_v5`` -> ("D", "s_v5"): the letters before the size and everything after it."""
    import re

    m = re.fullmatch(r"Standard_([A-Za-z]+)(\d+)([A-Za-z_0-9]*)", sku)
    return (m.group(1), m.group(3)) if m else None


def family_alternatives(sku: str) -> list[str]:
    """Other known SKUs of the same series, nearest in size first (the larger of two equally near first):
    where Spot is refused for one size, a shadow on a neighbour shows the change on the same hardware family."""
    series, size = _series(sku), sku_size(sku)
    if series is None or size is None:
        return []
    same = [k for k in SKU_SIZES if k != sku and _series(k) == series]
    return sorted(same, key=lambda k: (abs(SKU_SIZES[k][0] - size[0]), -SKU_SIZES[k][0]))
