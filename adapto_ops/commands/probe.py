"""HTTP(S) health probes that run on the host itself, with node (PM2 needs it anyway).

One node process checks every URL concurrently, retrying each until it
answers 200 or the deadline passes (a deadline of 0: one try), then prints one
JSON line: [{"url": ..., "status": 200, "ms": 12.3, "body": "..."} |
{"url": ..., "error": "...", "status": 503?}].

With ``with_token``, node reads the environment's probe token from its stdin
(never from argv, which every user of the host can read) and sends it as
``X-Adapto-Probe``: nginx then exempts the probe from its rate limits.
Running on the host reaches instances bound to 127.0.0.1 and checks nginx
exactly as a client on that machine would, in a single SSH round trip.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass

PROBE_JS = r"""
const [withToken, timeoutMs, ...specs] = process.argv.slice(1);
const deadline = Date.now() + Number(timeoutMs);
const token = withToken === '1' ? require('fs').readFileSync(0, 'utf8').trim() : '';
function probe(spec) {
  const [url, servername] = spec.split('|');
  const u = new URL(url);
  const mod = require(u.protocol === 'https:' ? 'https' : 'http');
  return new Promise((resolve) => {
    let last = 'no answer', lastStatus = null;
    function retry(why, status) {
      last = why;
      lastStatus = status || null;
      if (Date.now() >= deadline) return resolve({url, error: last, status: lastStatus});
      setTimeout(once, 150);
    }
    function once() {
      const started = process.hrtime.bigint();
      const options = {timeout: 5000, agent: false, rejectUnauthorized: false,
                       headers: {'User-Agent': 'adapto-probe'}};
      if (servername) { options.servername = servername; options.headers.Host = servername; }
      if (token) options.headers['X-Adapto-Probe'] = token;
      const req = mod.get(url, options, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d) => { if (body.length < 2000) body += d; });
        res.on('end', () => {
          const ms = Number(process.hrtime.bigint() - started) / 1e6;
          if (res.statusCode === 200) {
            return resolve({url, status: 200, ms, body: body.slice(0, 1000)});
          }
          retry(`HTTP ${res.statusCode} ${body.slice(0, 1000)}`, res.statusCode);
        });
      });
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.on('error', (e) => retry(e.code || e.message));
    }
    once();
  });
}
Promise.all(specs.map(probe)).then((results) => {
  console.log(JSON.stringify(results));
  process.exit(results.every((r) => r.status === 200) ? 0 : 1);
});
"""


@dataclass(frozen=True)
class ProbeResult:
    url: str
    ok: bool
    ms: float | None = None
    error: str | None = None
    body: str = ""
    status: int | None = None  # the last HTTP status, when there was an answer


def http_probe(urls: list[tuple[str, str]], timeout_s: float, *, with_token: bool = False) -> str:
    """Wait up to ``timeout_s`` for every (url, TLS server name or "") to answer 200.

    ``with_token``: the probe token is read from stdin and sent as X-Adapto-Probe.
    """
    specs = [f"{url}|{servername}" for url, servername in urls]
    return shlex.join(["node", "-e", PROBE_JS, "1" if with_token else "0",
                       str(int(timeout_s * 1000)), *specs])


def parse_probe(stdout: str, urls: list[tuple[str, str]]) -> list[ProbeResult]:
    """The probe's JSON line as results; a missing or garbled answer counts as failure."""
    try:
        raw = json.loads(stdout.strip().splitlines()[-1])
    except (json.JSONDecodeError, IndexError):
        why = stdout.strip()[-200:] or "probe gave no answer (is node installed on the host?)"
        return [ProbeResult(url, False, error=why) for url, _ in urls]
    return [
        ProbeResult(r["url"], r.get("status") == 200, r.get("ms"), r.get("error"),
                    r.get("body", ""), r.get("status"))
        for r in raw
    ]


NO_CURL = "ADAPTO_NO_CURL"


def curl_once(urls: list[tuple[str, str]], *, with_token: bool = False,
              max_time_s: float = 5.0) -> str:
    """One try of every (url, TLS server name or "") at once with curl; see :func:`parse_curl`.

    A curl process starts in ~10 ms where node takes 50-60 ms (more on a busy
    host), so the one-try checks of a deploy that replaced nothing use it. The
    server name goes in the URL, with ``--resolve`` pinning it to the address
    (SNI and Host both carry it, as in the node probe); the certificate is not
    verified (a sandbox's self-signed one). The token comes from stdin, into
    a header file curl reads from its own stdin: never into argv. Prints
    NO_CURL when the host has no curl (the caller falls back to node).
    """
    argv = ["curl", "-sk", "--parallel", "--parallel-immediate", "--max-time",
            f"{max_time_s:g}", "-w", "%{url_effective} %{http_code} %{time_total}\\n"]
    if with_token:
        argv += ["-H", "@-"]
    for url, servername in urls:
        argv += ["-o", "/dev/null", _named_url(url, servername, argv)]
    header = "{ printf 'X-Adapto-Probe: '; cat; } | " if with_token else "< /dev/null "
    return (f"command -v curl >/dev/null 2>&1 || {{ echo {NO_CURL}; exit 0; }}\n"
            f"{header}{shlex.join(argv)}")


def _named_url(url: str, servername: str, argv: list[str]) -> str:
    """``url`` with its host replaced by ``servername``, and a --resolve entry for it."""
    if not servername:
        return url
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    address = parts.hostname or ""
    argv += ["--resolve", f"{servername}:{port}:{f'[{address}]' if ':' in address else address}"]
    return parts._replace(netloc=f"{servername}:{port}").geturl()


def parse_curl(stdout: str, urls: list[tuple[str, str]]) -> list[ProbeResult] | None:
    """curl_once's lines as results in ``urls`` order; None when the host has no curl."""
    if NO_CURL in stdout:
        return None
    seen: dict[str, tuple[int, float]] = {}
    for line in stdout.splitlines():
        fields = line.split()
        if len(fields) == 3 and fields[1].isdigit():
            try:
                seen[fields[0]] = (int(fields[1]), float(fields[2]) * 1000)
            except ValueError:
                continue
    results = []
    for url, servername in urls:
        status, ms = seen.get(_named_url(url, servername, []), (0, 0.0))
        if status == 200:
            results.append(ProbeResult(url, True, ms, status=200))
        else:
            results.append(ProbeResult(url, False, error=f"HTTP {status}" if status
                                       else "no answer", status=status or None))
    return results
