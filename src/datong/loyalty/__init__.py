"""Points programs: earning, spending, expiry lots, tiers, migration and clearing between owners."""
