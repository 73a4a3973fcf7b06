"""Run the ExitBrain v3.5 stand-in, patched (the default) or as it was before.

python examples/exitbrain_v3_5/run.py            # after the patch
python examples/exitbrain_v3_5/run.py before     # before: no heartbeat
python examples/exitbrain_v3_5/run.py --redis-url redis://localhost:6379/0
"""

from __future__ import annotations

import argparse
import asyncio

import exit_brain_after
import exit_brain_before
import redis.asyncio

from exit_heartbeat.demo import ExampleOptions, run_example


async def run(client: redis.asyncio.Redis, options: ExampleOptions) -> None:
    """Run the chosen version for the time asked, then stop it cleanly."""
    module = exit_brain_before if options.args.version == "before" else exit_brain_after
    brain = module.ExitBrain(client)
    await brain.start()
    try:
        await asyncio.sleep(options.seconds)
    finally:
        await brain.stop()
    print(f"{brain.plans_generated} exit plans generated")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "version",
        nargs="?",
        choices=("before", "after"),
        default="after",
        help="which version of the service to run (default: after)",
    )
    # The patched service uses attach_heartbeat's defaults, one beat a second.
    raise SystemExit(run_example(run, parser=parser, interval=False))
