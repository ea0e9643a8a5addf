"""The backend tests' PostgreSQL cluster: adapto's own implementation, re-exported.

One cluster starter for the repository (adapto_ops/sandbox/pg_cluster.py): `adapto
sandbox up` runs the same code, so the tests exercise what the sandbox runs.
"""

from adapto_ops.sandbox.pg_cluster import (
    FAST_SETTINGS,
    Cluster,
    ClusterError,
    DatabaseUrls,
    free_port,
    provision,
    running_cluster,
    server_bin_dir,
)

__all__ = ["FAST_SETTINGS", "Cluster", "ClusterError", "DatabaseUrls", "free_port", "provision",
           "running_cluster", "server_bin_dir"]
