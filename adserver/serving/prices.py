"""Prices as shoppers read them: the currency's symbol before the amount, thousands grouped."""

from __future__ import annotations

from adserver.catalog.product import Product

SYMBOLS = {"CNY": "¥", "JPY": "¥", "USD": "$", "EUR": "€", "GBP": "£", "HKD": "HK$", "TWD": "NT$"}


def money(amount: float, currency: str) -> str:
    """``¥1,299.00``; a currency without a well-known symbol keeps its code after the amount."""
    symbol = SYMBOLS.get(currency)
    return f"{symbol}{amount:,.2f}" if symbol else f"{amount:,.2f} {currency}"


def price_text(product: Product) -> str:
    """What the product costs now: its sale price while it is on sale."""
    return money(product.display_price, product.currency)
