"""members domain."""
