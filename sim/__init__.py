"""Strategy simulator: run a champion policy and a challenger over one synthetic portfolio.

    python starter.py simulate --policy default --challenger policies/challenger-early-legal.toml \\
        --loans 10000 --days 365 --seed 7

- `sim.generate`: the reproducible portfolio (amounts, DPD, time zones, segments, contact details) and
  its split between the two policies;
- `sim.behaviour`: what each simulated borrower does after each kind of contact (pay, pay part,
  promise, agree a plan, dispute, ask for a hardship hold, complain), from a random generator of its own;
- `sim.run`: the real `CollectionCase` workflows, activities, contact gate, database and sandbox gateway
  on the time-skipping Temporal test server; borrowers answer through the operators' updates;
- `sim.report`: the figures per policy, side by side (rich table, Markdown report, PNG plots).

Same seed, same numbers: every borrower decides from its own generator, decisions are taken at
fixed simulated times and applied in loan-id order, and the simulated clock starts on a fixed date.
"""
