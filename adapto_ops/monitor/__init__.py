"""`adapto monitor`: health checks on a schedule, uptime and latency, alerts, auto-recover."""
