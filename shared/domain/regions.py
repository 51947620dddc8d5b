"""Azure public-cloud regions by their programmatic names (what ``location`` takes): the catalogue a scenario's
``fleet.region`` is checked against. From the regions list of the Azure CLI (``az account list-locations``,
physical regions) and https://learn.microsoft.com/azure/reliability/regions-list. A region added by Azure later
is refused until it is added here: a typo must never be mistaken for a real place.
"""

from __future__ import annotations

REGIONS: frozenset[str] = frozenset({
    # Americas
    "eastus", "eastus2", "centralus", "northcentralus", "southcentralus", "westcentralus", "westus", "westus2",
    "westus3", "canadacentral", "canadaeast", "brazilsouth", "brazilsoutheast", "mexicocentral", "chilecentral",
    # Europe
    "northeurope", "westeurope", "uksouth", "ukwest", "francecentral", "francesouth", "germanywestcentral",
    "germanynorth", "norwayeast", "norwaywest", "swedencentral", "switzerlandnorth", "switzerlandwest",
    "polandcentral", "italynorth", "spaincentral", "austriaeast",
    # Asia Pacific
    "eastasia", "southeastasia", "japaneast", "japanwest", "koreacentral", "koreasouth", "australiaeast",
    "australiasoutheast", "australiacentral", "australiacentral2", "centralindia", "southindia", "westindia",
    "jioindiawest", "jioindiacentral", "indonesiacentral", "malaysiawest", "newzealandnorth",
    # Middle East and Africa
    "uaenorth", "uaecentral", "qatarcentral", "israelcentral", "southafricanorth", "southafricawest",
})
