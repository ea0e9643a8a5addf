"""`adapto audit`: the runbook's success criteria judged from what adapto already reads."""
