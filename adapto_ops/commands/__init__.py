"""Pure builders of shell commands: no I/O, quoted with shlex, compared as strings in tests."""
