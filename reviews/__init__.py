"""Human review queues: predictions held or audited by a person, claims, decisions, appeals,
SLAs and the outcomes that count in release analysis (issue 11)."""
