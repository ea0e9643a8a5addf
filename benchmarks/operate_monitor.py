"""The monitor's time from fault to alert, on a real sandbox with a fake Telegram Bot API.

A one-host sandbox (sshd, nginx, PM2 with the reference backend) is brought up
on loopback, `adapto monitor --interval S` runs against it alerting to a fake
Telegram on 127.0.0.1, and the backend is stopped for real (`pm2 stop` of every instance)
RUNS times. Printed: fault -> alert (from `pm2 stop` starting, an upper
bound, and from it returning, a lower bound, to the alert reaching the Bot
API) and recovery -> resolved message, median, min and max. The floor is
(failure_threshold - 1) x interval plus one round.

    python3 benchmarks/operate_monitor.py [--runs 5] [--interval 1] [--threshold 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.fake_telegram import FakeTelegram
from tests.monitor_support import (
    CHAT,
    TOKEN,
    fault_to_alert,
    monitor_inventory,
    monitor_running,
    start_backend,
)
from tests.operate_sandbox import Slot, deployed_sandbox


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--threshold", type=int, default=3, help="failure_threshold")
    parser.add_argument("--address", default="127.0.0.81", help="loopback address of the sandbox")
    args = parser.parse_args()
    slot = Slot(args.address, 2381, 8381, 8481, (3381, 3382))
    to_alert: list[float] = []  # from `pm2 stop` starting (an upper bound)
    to_alert_low: list[float] = []  # from `pm2 stop` returning (a lower bound)
    to_resolved: list[float] = []
    with tempfile.TemporaryDirectory(prefix="adapto-bench-monitor-") as tmp, \
            deployed_sandbox(Path(tmp), slot) as box:
        fake = FakeTelegram(TOKEN, CHAT).start()
        inventory = monitor_inventory(box, fake, failure_threshold=args.threshold,
                                      interval_s=args.interval)
        try:
            with monitor_running(box, inventory, "--json") as run:
                if not run.wait_rounds(2, 60, healthy=True):
                    raise SystemExit(f"the monitor did not start\n{run.said()}")
                for i in range(args.runs):
                    sent = len(fake.texts())
                    high, low = fault_to_alert(box, fake, run)
                    to_alert.append(high)
                    to_alert_low.append(low)
                    start_backend(box)
                    back = time.time()
                    if not fake.wait_for(sent + 2, 60):
                        raise SystemExit(f"no resolved message\n{run.said()}")
                    to_resolved.append(fake.messages[sent + 1].at - back)
                    print(f"run {i + 1}: fault -> alert {low:.2f}-{high:.2f} s, "
                          f"back -> resolved {to_resolved[-1]:.2f} s", flush=True)
                    time.sleep(args.interval * 2)
                messages = fake.texts()
                took = [r["took_ms"] for r in run.rounds()]
        finally:
            fake.stop()
    alerts = sum(text.startswith("ALERT") for text in messages)
    resolved = sum(text.startswith("RESOLVED") for text in messages)
    print(f"\nmonitor, interval {args.interval:g} s, failure_threshold {args.threshold}, "
          f"success_threshold 2, {args.runs} faults (pm2 stop of every instance)")
    print(f"  messages: {alerts} alerts, {resolved} resolved (expected {args.runs} each)")
    print(f"  one round of health checks: median {statistics.median(took) / 1000:.2f} s "
          f"(p95 {sorted(took)[int(len(took) * 0.95)] / 1000:.2f} s, {len(took)} rounds)")
    for label, values in (("fault -> alert", to_alert),
                          ("  (from stop's end)", to_alert_low),
                          ("back -> resolved", to_resolved)):
        print(f"  {label:<17} median {statistics.median(values):.2f} s  "
              f"min {min(values):.2f} s  max {max(values):.2f} s")


if __name__ == "__main__":
    main()
