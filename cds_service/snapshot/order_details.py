"""Dose, schedule, start date, documented reasons and food instructions of a palbociclib order."""

from __future__ import annotations

from typing import Any

from cds_service.snapshot.model import OrderDetails, Product


def describe_order(resource: dict[str, Any], product: Product | None) -> OrderDetails:
    """What a MedicationRequest says about how palbociclib is to be taken."""
    return OrderDetails()
