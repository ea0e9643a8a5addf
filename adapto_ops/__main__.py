"""`python -m adapto_ops` is the `adapto` command."""

from adapto_ops.cli import main

main()
