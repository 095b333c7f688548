"""Shared plumbing: settings, database, ids, errors, encryption. No domain logic lives here."""
