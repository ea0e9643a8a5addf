#!/usr/bin/env bash
# Installs what adapto, its tests and its sandbox need on a Debian machine,
# skipping whatever is already there (a second run takes a few seconds).
#   apt: nginx, openssh-server, ufw, logrotate, rsync, iproute2, procps, postgresql,
#        chromium, certbot, pebble, testssl.sh, iptables, nodejs/npm (if no node)
#   npm: pm2      pip: adapto itself (editable) with its test extras
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need_apt+=(nginx)
[ -x /usr/sbin/sshd ] || need_apt+=(openssh-server)
command -v ufw >/dev/null 2>&1 || [ -x /usr/sbin/ufw ] || need_apt+=(ufw)
command -v logrotate >/dev/null 2>&1 || [ -x /usr/sbin/logrotate ] || need_apt+=(logrotate)
command -v rsync >/dev/null 2>&1 || need_apt+=(rsync)
command -v node >/dev/null 2>&1 || need_apt+=(nodejs npm)
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
command -v ssh-keygen >/dev/null 2>&1 || need_apt+=(openssh-client)
# facts read listeners with ss and processes with ps/pgrep (status, recover).
command -v ss >/dev/null 2>&1 || [ -x /usr/sbin/ss ] || need_apt+=(iproute2)
command -v pgrep >/dev/null 2>&1 || need_apt+=(procps)
# The reference backend's venv is made on the (sandbox) host with its python3.
{ [ -x /usr/bin/python3 ] && /usr/bin/python3 -c 'import ensurepip, venv' >/dev/null 2>&1; } || need_apt+=(python3 python3-venv)
# The reference backend's tests start their own PostgreSQL cluster from
# Debian's server binaries (initdb/pg_ctl under /usr/lib/postgresql/N/bin).
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || need_apt+=(postgresql)
# The browser e2e tests drive Debian's headless Chromium with Playwright.
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
# adapto ssl: real certbot against Debian's Pebble ACME test server on loopback;
# the served TLS is scanned with testssl.sh.
command -v certbot >/dev/null 2>&1 || need_apt+=(certbot)
command -v pebble >/dev/null 2>&1 || need_apt+=(pebble)
command -v testssl >/dev/null 2>&1 || need_apt+=(testssl.sh)
# adapto firewall: real ufw/iptables inside network namespaces the tests create.
[ -x /usr/sbin/iptables ] || need_apt+=(iptables)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: apt-get install ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi
# Debian's nginx package may start a system nginx on :80, and its postgresql
# package a system cluster on :5432; adapto's sandbox and tests run their own,
# so the system ones are left alone.

if ! command -v pm2 >/dev/null 2>&1; then
  echo "setup: npm install -g pm2"
  npm install -g --no-audit --no-fund pm2@5 >/dev/null
fi

stamp=.adapto/setup-stamp
want="$(sha256sum pyproject.toml | cut -c1-16)-$(python3 --version)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ] || ! command -v adapto >/dev/null 2>&1; then
  echo "setup: pip install -e .[test,backend]"
  python3 -m pip install -q --disable-pip-version-check -e ".[test,backend]"
  mkdir -p .adapto && echo "$want" > "$stamp"
fi
