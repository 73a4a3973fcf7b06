"""Benchmarks of exit_heartbeat, side by side with what a user would use instead.

Run them all with ``python -m benchmarks`` (``--quick`` for a short smoke run,
``--output PATH`` to write the report elsewhere than ``BENCHMARKS.md``). Each
module measures one thing and returns a `benchmarks.report.Section`:

- `benchmarks.overhead`: what the cycle decorators add to each call.
- `benchmarks.publisher`: the CPU a heartbeat costs, for 1 and 1,000 services.
- `benchmarks.schedule`: how closely beats keep to their 1 Hz schedule.
- `benchmarks.watchdog_scale`: one watchdog pass over thousands of instances.
- `benchmarks.detection`: how long a hang takes to turn into an alert.

These are reports, not timed tests: the machines they run on are shared and
noisy, so each figure that matters is a ratio of two measurements taken in the
same run, and targets are checked and stated, never asserted.
"""
