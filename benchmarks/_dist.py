"""A deterministic stand-in for a production Vite build: 300 files, ~37 MB.

Everything comes from one seeded ``random.Random``, so two runs make the same
bytes and the same hashed names:

- ``index.html`` naming the entry script, the stylesheet and a preloaded hero image;
- 280 hashed assets in ``assets/``: the entry chunk, ~200 lazy JS chunks and
  ~30 CSS files of pseudo-minified text (compresses about 3:1, like real
  bundles), 22 ~1 MB photos and a few fonts of random bytes (do not compress),
  SVG icons, and the 100 kB hero image a "one changed asset" redeploy replaces;
- 19 other files: favicon, robots.txt, web manifest, service worker, icons, locales.
"""

from __future__ import annotations

import hashlib
import random
import shutil
from pathlib import Path

SEED = 20261125
TOTAL_BYTES = 37_000_000
ASSETS = 280
HERO_BYTES = 100_000  # the asset the one-change redeploy replaces
PHOTOS = 22

_WORDS = None


def _vocabulary(rng: random.Random) -> list[str]:
    letters = "abcdefghijklmnopqrstuvwxyz"
    words = ["function", "return", "const", "let", "var", "this", "null", "void", "new",
             "typeof", "=>", "if", "else", "for", "while", "await", "async", "export",
             "import", "default", "true", "false", "0", "1", "e", "t", "n", "r", "i"]
    words += ["".join(rng.choices(letters, k=rng.randint(2, 10))) for _ in range(500)]
    return words


def _text(rng: random.Random, size: int, css: bool = False) -> bytes:
    """``size`` bytes of minified-looking code from a seeded vocabulary."""
    global _WORDS
    if _WORDS is None:
        _WORDS = _vocabulary(random.Random(SEED ^ 0x5EED))
    seps = (["{", "}", ":", ";", " ", "-", "#", ".", ","] if css
            else ["(", ")", "{", "}", ".", ",", ";", "=", "[", "]", "+", "&&", "||", "?", ":"])
    parts: list[str] = []
    length = 0
    words, choices = _WORDS, rng.choices
    while length < size:
        chunk = "".join(w + s for w, s in zip(choices(words, k=2048), choices(seps, k=2048),
                                               strict=True))
        parts.append(chunk)
        length += len(chunk)
    return "".join(parts).encode()[:size]


def _binary(rng: random.Random, size: int) -> bytes:
    return rng.randbytes(size)


def _hashed(stem: str, ext: str, data: bytes) -> str:
    return f"{stem}-{hashlib.sha256(data).hexdigest()[:8]}.{ext}"


def index_html(entry_js: str, entry_css: str, hero: str, preload: list[str]) -> bytes:
    links = "\n".join(f'    <link rel="modulepreload" crossorigin href="/assets/{p}">'
                      for p in preload)
    return f"""<!doctype html>
<html lang="ru">
  <head>
    <meta charset="UTF-8" />
    <link rel="icon" type="image/svg+xml" href="/favicon.svg" />
    <link rel="manifest" href="/manifest.webmanifest" />
    <meta name="viewport" content="width=device-width, initial-scale=1.0" />
    <title>AI support platform</title>
    <script type="module" crossorigin src="/assets/{entry_js}"></script>
{links}
    <link rel="preload" as="image" href="/assets/{hero}">
    <link rel="stylesheet" crossorigin href="/assets/{entry_css}">
  </head>
  <body>
    <div id="root"></div>
  </body>
</html>
""".encode()


class Dist:
    """Writes the dist and remembers the names a later change needs."""

    def __init__(self, dist: Path) -> None:
        self.dist = dist
        self.entry_js = self.entry_css = self.hero = ""
        self.preload: list[str] = []

    def _put(self, rel: str, data: bytes) -> None:
        path = self.dist / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    def _asset(self, stem: str, ext: str, data: bytes) -> str:
        name = _hashed(stem, ext, data)
        self._put(f"assets/{name}", data)
        return name

    def write(self) -> tuple[int, int]:
        """Write the whole dist (replacing any); returns (files, bytes)."""
        if self.dist.exists():
            shutil.rmtree(self.dist)
        rng = random.Random(SEED)
        # Fixed parts first; lazy JS chunks share what is left of the budget.
        others: list[tuple[str, bytes]] = [
            ("favicon.ico", _binary(rng, 15_086)),
            ("favicon.svg", _text(rng, 1_200, css=True)),
            ("robots.txt", b"User-agent: *\nAllow: /\n"),
            ("manifest.webmanifest", _text(rng, 640)),
            ("sw.js", _text(rng, 24_000)),
            ("404.html", _text(rng, 2_000)),
        ]
        others += [(f"icons/icon-{px}.png", _binary(rng, px * 60))
                   for px in (48, 72, 96, 144, 192, 512)]
        others += [(f"locales/{lang}.json", _text(rng, rng.randint(12_000, 30_000)))
                   for lang in ("ru", "en", "de", "fr", "es", "kk", "uz")]
        for rel, data in others:
            self._put(rel, data)
        used = sum(len(d) for _, d in others)

        self.hero = self._asset("hero", "jpg", _binary(rng, HERO_BYTES))
        used += HERO_BYTES
        count = 1
        for i in range(PHOTOS):
            size = rng.randint(850_000, 1_150_000)
            self._asset(f"photo-{i:02d}", "jpg", _binary(rng, size))
            used, count = used + size, count + 1
        for i in range(6):
            size = rng.randint(30_000, 80_000)
            self._asset(f"font-{i}", "woff2", _binary(rng, size))
            used, count = used + size, count + 1
        for i in range(20):
            size = rng.randint(400, 3_000)
            self._asset(f"icon-{i:02d}", "svg", _text(rng, size, css=True))
            used, count = used + size, count + 1
        css_sizes = [rng.randint(2_000, 60_000) for _ in range(30)]
        for i, size in enumerate(css_sizes):
            name = self._asset(f"style-{i:02d}", "css", _text(rng, size, css=True))
            self.entry_css = self.entry_css or name
        used += sum(css_sizes)
        count += len(css_sizes)
        chunks = ASSETS - count - 1  # the entry chunk is the last asset
        weights = [rng.lognormvariate(0, 1.0) for _ in range(chunks + 1)]
        budget = TOTAL_BYTES - used - 1_500  # index.html
        sizes = [max(300, int(budget * w / sum(weights))) for w in weights]
        self.entry_js = self._asset("index", "js", _text(rng, sizes[0]))
        for i, size in enumerate(sizes[1:]):
            name = self._asset(f"chunk-{i:03d}", "js", _text(rng, size))
            if i < 4:
                self.preload.append(name)
        self._put("index.html", index_html(self.entry_js, self.entry_css, self.hero,
                                           self.preload))
        return self.stats()

    def change_hero(self, generation: int) -> tuple[str, int]:
        """Replace the hero image with new content under a new hashed name, as a build would,
        and point index.html at it. Returns (new asset path in the dist, its size)."""
        old = self.dist / "assets" / self.hero
        data = _binary(random.Random(SEED + generation), HERO_BYTES)
        old.unlink()
        self.hero = self._asset("hero", "jpg", data)
        self._put("index.html", index_html(self.entry_js, self.entry_css, self.hero,
                                           self.preload))
        return f"assets/{self.hero}", len(data)

    def stats(self) -> tuple[int, int]:
        files = [p for p in self.dist.rglob("*") if p.is_file()]
        return len(files), sum(p.stat().st_size for p in files)


def write_tiny(dist: Path) -> None:
    """The bootstrap release's frontend: an index.html and one asset."""
    if dist.exists():
        shutil.rmtree(dist)
    (dist / "assets").mkdir(parents=True)
    js = b"console.log('bootstrap');\n"
    name = _hashed("index", "js", js)
    (dist / "assets" / name).write_bytes(js)
    (dist / "index.html").write_bytes(index_html(name, name, name, []))
