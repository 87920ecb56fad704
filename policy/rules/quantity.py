"""Kubernetes resource quantities ("30Gi", "500M", "1.5Ti") as numbers of bytes."""

from __future__ import annotations

import re

SUFFIXES = {
    "": 1,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "P": 10**15,
    "E": 10**18,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
    "Ei": 2**60,
}
PATTERN = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*$")


def to_bytes(quantity: str | int | float) -> float:
    if isinstance(quantity, int | float):
        return float(quantity)
    match = PATTERN.match(str(quantity))
    if not match or match.group(2) not in SUFFIXES:
        raise ValueError(f"{quantity!r} is not a Kubernetes quantity")
    return float(match.group(1)) * SUFFIXES[match.group(2)]
