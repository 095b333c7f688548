"""The double-entry ledger: points, commissions and settlements in their own units."""
