"""The API's routes, one module per resource: cases (open, list, status), payments, inputs (promises, plans, holds, outcomes)."""
