"""`adapto firewall`: ufw's rules read, compared with the inventory's, and the difference applied.

:mod:`rules` parses what ufw prints into typed rules; :mod:`plan` computes the
difference and refuses plans that would lock adapto out. Both are pure; the
procedure in :mod:`adapto_ops.procedures.firewall` reads and changes hosts.
"""
