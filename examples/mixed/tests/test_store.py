import pytest

from inventory.store import Inventory


def test_add_and_remove():
    stock = Inventory()
    stock.add("A-1", "Anvil", 3)
    stock.remove("A-1", 1)
    assert stock.quantity("A-1") == 2


def test_cannot_remove_more_than_stock():
    stock = Inventory()
    stock.add("A-1", "Anvil", 1)
    with pytest.raises(ValueError):
        stock.remove("A-1", 2)


def test_items_sorted_by_sku():
    stock = Inventory()
    stock.add("B-2", "Bolt", 1)
    stock.add("A-1", "Anvil", 1)
    assert [item.sku for item in stock.items()] == ["A-1", "B-2"]
