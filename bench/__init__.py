"""Benchmarks (`python -m bench`): each figure beside its baseline, measured in the same run on the same server.

1. start throughput   cases started (start + the reminder's deliveries recorded) per second vs a no-op workflow
2. memory             worker RSS per cached live case vs a workflow that only waits on a timer
3. reaction           record_payment latency (p50/p95/p99) vs a no-op update on a no-op workflow, N live cases
4. portfolio          N loans walking 365 days of the default policy on the time-skipping server
5. import             CSV rows per second into started cases vs the raw start rate of item 1

Workflows run in a worker subprocess (bench/worker.py) built by worker.build_worker, with the
bench's own trivial workflows registered beside CollectionCase (bench/noop.py).
"""
