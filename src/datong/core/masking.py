"""How personal data is shown to someone who may not see it whole (``shared/reference/channels.md``)."""

from __future__ import annotations


def mask_phone(phone: str) -> str:
    """``13812341234`` → ``138****1234``. Anything shorter than 7 characters is hidden entirely."""
    if len(phone) < 7:
        return "*" * len(phone)
    return f"{phone[:3]}{'*' * (len(phone) - 7)}{phone[-4:]}"


def mask_id_number(number: str) -> str:
    """``110101199003071234`` → ``1****************4`` (first and last character kept)."""
    if len(number) <= 2:
        return "*" * len(number)
    return number[0] + "*" * (len(number) - 2) + number[-1]


def mask_name(name: str) -> str:
    """``张三丰`` → ``张**``."""
    if not name:
        return name
    return name[0] + "*" * max(len(name) - 1, 1)


def mask_email(email: str) -> str:
    local, _, domain = email.partition("@")
    return f"{local[:1]}***@{domain}" if domain else mask_name(email)


def mask_address(address: str) -> str:
    """Keep the first six characters (province and city, usually); hide the rest."""
    return address[:6] + "****" if len(address) > 6 else "****"
