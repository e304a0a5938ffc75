"""The system of record: borrowers (the only place PII lives), loans, cases, payments, contacts, events."""
