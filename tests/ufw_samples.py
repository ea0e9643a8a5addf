"""ufw's output as adapto reads it, shared by the firewall and audit unit tests.

The texts are what `ufw status verbose`, `ufw show added` and /etc/default/ufw print on
Debian for the production inventory's rules (SSH 22, 80/443 open, 3001/3002 denied).
"""

from __future__ import annotations

SHOW_ADDED_EMPTY = """Added user rules (see 'ufw status' for running firewall):
(None)
"""
SHOW_ADDED_SSH_ONLY = """Added user rules (see 'ufw status' for running firewall):
ufw allow 22/tcp comment 'adapto: ssh'
"""
SHOW_ADDED_SYNCED = SHOW_ADDED_SSH_ONLY + """ufw allow 80/tcp comment 'adapto: allow'
ufw allow 443/tcp comment 'adapto: allow'
ufw deny 3001/tcp comment 'adapto: deny'
ufw deny 3002/tcp comment 'adapto: deny'
"""
# Active, with only the SSH rule adapto adds first.
STATUS_ACTIVE_SSH_ONLY = """Status: active
Logging: on (low)
Default: deny (incoming), allow (outgoing), disabled (routed)
New profiles: skip

To                         Action      From
--                         ------      ----
22/tcp                     ALLOW IN    Anywhere                   # adapto: ssh
"""
STATUS_VERBOSE_ACTIVE = STATUS_ACTIVE_SSH_ONLY + """\
3001/tcp                   DENY IN     Anywhere                   # adapto: deny
22/tcp (v6)                ALLOW IN    Anywhere (v6)              # adapto: ssh
"""
DEFAULTS_DEBIAN = 'DEFAULT_INPUT_POLICY="DROP"\nDEFAULT_OUTPUT_POLICY="ACCEPT"\n'
