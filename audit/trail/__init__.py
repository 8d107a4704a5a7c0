"""The audit trail as users read it: events, verification and proofs, authorised and recorded."""
