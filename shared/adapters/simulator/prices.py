"""Hourly prices and sizes per VM SKU (Linux, pay-as-you-go and Spot).

Source: the public Azure Retail Prices API (``prices.azure.com/api/retail/prices``, serviceName 'Virtual
Machines', Linux meters, region eastus), figures as published around 2025; Spot prices move daily, so these
are representative list prices, not a quote. Other regions use a multiplier. A SKU missing from the table
is priced from its vCPU count at the D-series v5 rate per vCPU, and said so in the simulator docs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ...domain.skus import SKU_SIZES


@dataclass(frozen=True)
class SkuInfo:
    vcpus: int
    memory_gib: float
    payg_usd_hour: float
    spot_usd_hour: float | None  # None: Spot is not offered for this series (B-series)


PRICES: dict[str, tuple[float, float | None]] = {
    # sku: (pay-as-you-go, Spot) USD per hour; None: no Spot for the series
    "Standard_B2s": (0.0416, None), "Standard_B4ms": (0.166, None),
    "Standard_D2s_v3": (0.096, 0.0118), "Standard_D4s_v3": (0.192, 0.0235),
    "Standard_D2s_v5": (0.096, 0.0115), "Standard_D4s_v5": (0.192, 0.0230), "Standard_D8s_v5": (0.384, 0.0461),
    "Standard_D16s_v5": (0.768, 0.0922), "Standard_D32s_v5": (1.536, 0.1843),
    "Standard_D2as_v5": (0.086, 0.0103), "Standard_D4as_v5": (0.172, 0.0206), "Standard_D8as_v5": (0.344, 0.0413),
    "Standard_D16as_v5": (0.688, 0.0826),
    "Standard_E2s_v5": (0.126, 0.0151), "Standard_E4s_v5": (0.252, 0.0302), "Standard_E8s_v5": (0.504, 0.0605),
    "Standard_E16s_v5": (1.008, 0.1210),
    "Standard_F2s_v2": (0.0846, 0.0101), "Standard_F4s_v2": (0.169, 0.0203), "Standard_F8s_v2": (0.338, 0.0406),
    "Standard_F16s_v2": (0.677, 0.0812),
}
SKUS: dict[str, SkuInfo] = {
    sku: SkuInfo(SKU_SIZES[sku][0], SKU_SIZES[sku][1], payg, spot) for sku, (payg, spot) in PRICES.items()
}

REGION_MULTIPLIER: dict[str, float] = {
    "eastus": 1.0, "eastus2": 1.0, "westus2": 1.0, "centralus": 1.08, "westus": 1.12,
    "northeurope": 1.08, "westeurope": 1.15, "uksouth": 1.14, "southeastasia": 1.2, "japaneast": 1.28,
}
_PER_VCPU_PAYG = 0.048
_SPOT_SHARE = 0.12


def sku_info(sku: str) -> SkuInfo:
    if sku in SKUS:
        return SKUS[sku]
    m = re.search(r"_[A-Za-z]+(\d+)", sku)
    vcpus = int(m.group(1)) if m else 2
    return SkuInfo(vcpus, 4.0 * vcpus, _PER_VCPU_PAYG * vcpus, _PER_VCPU_PAYG * vcpus * _SPOT_SHARE)


def hourly_price(sku: str, region: str, *, spot: bool) -> float:
    info = sku_info(sku)
    mult = REGION_MULTIPLIER.get(region, 1.1)
    price = info.spot_usd_hour if spot and info.spot_usd_hour is not None else info.payg_usd_hour
    return price * mult
