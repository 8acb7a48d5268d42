"""The inventory: items by SKU with a name and a quantity on hand."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Item:
    sku: str
    name: str
    quantity: int


class Inventory:
    def __init__(self) -> None:
        self._items: dict[str, Item] = {}

    def add(self, sku: str, name: str, quantity: int) -> Item:
        if quantity < 0:
            raise ValueError("quantity must not be negative")
        item = self._items.get(sku)
        if item is None:
            item = self._items[sku] = Item(sku, name, 0)
        item.quantity += quantity
        return item

    def remove(self, sku: str, quantity: int) -> Item:
        item = self._items[sku]
        if quantity > item.quantity:
            raise ValueError(f"only {item.quantity} of {sku} in stock")
        item.quantity -= quantity
        return item

    def quantity(self, sku: str) -> int:
        item = self._items.get(sku)
        return 0 if item is None else item.quantity

    def items(self) -> list[Item]:
        return sorted(self._items.values(), key=lambda item: item.sku)
