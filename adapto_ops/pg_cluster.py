"""The old import path of :mod:`adapto_ops.sandbox.pg_cluster`, kept for code written before
the sandbox became a package (new code imports from adapto_ops.sandbox.pg_cluster)."""

from adapto_ops.sandbox.pg_cluster import (
    FAST_SETTINGS,
    SERVER_USER,
    START_TIMEOUT_S,
    Cluster,
    ClusterError,
    DatabaseUrls,
    free_port,
    provision,
    running_cluster,
    server_bin_dir,
)

__all__ = ["FAST_SETTINGS", "SERVER_USER", "START_TIMEOUT_S", "Cluster", "ClusterError",
           "DatabaseUrls", "free_port", "provision", "running_cluster", "server_bin_dir"]
