"""Reading log files: pure line handling (times, filters, masking, prefixes)."""
