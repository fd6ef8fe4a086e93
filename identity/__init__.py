"""Identity and audit, the base every domain app stands on: teams, memberships and their duties,
CI tokens, the append-only audit log, idempotency records and the one place that says who may do
what (permissions.py). It imports only core."""
