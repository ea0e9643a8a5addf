"""`adapto recover backend|nginx`: the runbook's recovery procedures as checked steps.

Public entry: :func:`recover` (also what `monitor --auto-recover` calls).
"""

from adapto_ops.recover.report import WHATS, HostRecovery, RecoverReport
from adapto_ops.recover.run import recover

__all__ = ["WHATS", "HostRecovery", "RecoverReport", "recover"]
