"""Coupons: templates, issuance, codes, redemption (核销), lucky draws and spend-tiered rewards."""
