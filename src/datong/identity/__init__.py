"""Normalisation of what people write (phones, names, dates, ID numbers, addresses) and matching rules."""
