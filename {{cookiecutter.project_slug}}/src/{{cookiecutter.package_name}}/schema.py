"""The data schema: one declaration read by data generation, validation, training and the
request model of the server. Edit it when you replace the example data (see README)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Feature:
    name: str
    kind: Literal["numeric", "categorical"]
    description: str
    dtype: Literal["float", "int", "str"] = "float"
    minimum: float | None = None
    maximum: float | None = None
    categories: tuple[str, ...] = ()
    # True: a blank (null, absent, empty CSV cell) is a valid value, passed to the model as
    # missing (NaN / ""); False: a blank is refused naming the feature
    nullable: bool = False


FEATURES: tuple[Feature, ...] = (
    Feature(
        "amount", "numeric", "Transaction amount in the card's currency", minimum=0, maximum=1e6
    ),
    Feature("hour", "numeric", "Hour of day of the transaction (0-23)", "int", 0, 23),
    Feature("day_of_week", "numeric", "Day of week, Monday = 0", "int", 0, 6),
    Feature(
        "merchant_category",
        "categorical",
        "Merchant category",
        "str",
        categories=(
            "grocery",
            "restaurants",
            "fuel",
            "travel",
            "electronics",
            "online_retail",
            "entertainment",
            "health",
            "jewelry",
            "gaming",
        ),
    ),
    Feature(
        "channel",
        "categorical",
        "How the card was presented",
        "str",
        categories=("chip", "contactless", "swipe", "online", "phone"),
    ),
    Feature(
        "device_type",
        "categorical",
        "Device used for the purchase",
        "str",
        categories=("pos", "mobile", "desktop", "tablet"),
    ),
    Feature("customer_age", "numeric", "Card holder's age in years", "int", 18, 100),
    Feature("card_age_days", "numeric", "Days since the card was issued", "int", 0, 10_000),
    # Bounded by half the Earth's circumference; every numeric feature has a finite upper bound
    # so no request can push the model into overflow.
    Feature(
        "distance_from_home_km",
        "numeric",
        "Distance from the holder's home",
        minimum=0,
        maximum=20_100,
    ),
    Feature("txn_count_24h", "numeric", "Card transactions in the previous 24 h", "int", 0, 10_000),
    Feature(
        "avg_amount_30d", "numeric", "Mean transaction amount over 30 days", minimum=0, maximum=1e6
    ),
    Feature("amount_to_avg_ratio", "numeric", "amount / avg_amount_30d", minimum=0, maximum=1e6),
    Feature("foreign_transaction", "numeric", "1 when abroad, else 0", "int", 0, 1),
    Feature("failed_pin_attempts_24h", "numeric", "Failed PIN attempts in 24 h", "int", 0, 20),
)
TARGET = "is_fraud"
CLASS_NAMES = ("legit", "fraud")
TASK = "binary"

NUMERIC_FEATURES = tuple(f.name for f in FEATURES if f.kind == "numeric")
CATEGORICAL_FEATURES = tuple(f.name for f in FEATURES if f.kind == "categorical")
FEATURE_NAMES = tuple(f.name for f in FEATURES)
FEATURES_BY_NAME = {f.name: f for f in FEATURES}
