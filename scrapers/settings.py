"""What a crawl is asked to do (`CrawlConfig`), where it keeps its state (`CrawlPaths`) and the Scrapy
settings that make it a polite one.

Kept free of Scrapy imports so the CLI and the builder can use the config and the paths cheaply.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from bench.errors import BenchError

DEFAULT_BASE_URL = "https://www.bricklink.com"
DEFAULT_IMAGE_BASE_URL = "https://img.bricklink.com"
# BrickLink's help pages discourage automated copying; one request per second is the least a guest should do.
POLITE_DELAY_SECONDS = 1.0
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}

RETRY_HTTP_CODES = [429, 500, 502, 503, 504, 522, 524, 408]
RETRY_TIMES = 5  # backoff doubles from `delay`: 1 + 2 + 4 + 8 + 16 s before giving up at the default delay


@dataclass(frozen=True)
class CrawlPaths:
    """Everything a crawl writes lives under `<out>/.crawl/`, never in the user's working directory."""

    out: Path

    @property
    def root(self) -> Path:
        return self.out / ".crawl"

    @property
    def http_cache(self) -> Path:
        return self.root / "httpcache"

    @property
    def images(self) -> Path:
        return self.root / "images"

    @property
    def items(self) -> Path:
        """One JSON object per minifigure, sorted by item number; written only when a crawl finishes."""
        return self.root / "items.jsonl"

    @property
    def config(self) -> Path:
        return self.root / "crawl.json"

    @property
    def log(self) -> Path:
        """Scrapy's log of the last crawl."""
        return self.root / "crawl.log"

    @property
    def outcome(self) -> Path:
        """How the last crawl ended (finished, or stopped and why), read by the process that started it."""
        return self.root / "last_crawl.json"


@dataclass(frozen=True)
class CrawlConfig:
    out: Path
    base_url: str = DEFAULT_BASE_URL
    image_base_url: str = DEFAULT_IMAGE_BASE_URL
    categories: tuple[str, ...] = field(default_factory=tuple)  # empty: walk the whole category tree
    max_items: int | None = None
    delay: float = POLITE_DELAY_SECONDS

    def __post_init__(self) -> None:
        object.__setattr__(self, "out", Path(self.out).resolve())
        object.__setattr__(self, "base_url", _checked_url("--base-url", self.base_url))
        object.__setattr__(self, "image_base_url", _checked_url("--image-base-url", self.image_base_url))
        object.__setattr__(self, "categories", tuple(_checked_category(c) for c in self.categories))
        if self.max_items is not None and self.max_items < 1:
            raise BenchError(f"--max-items must be at least 1, got {self.max_items}")
        if self.delay < 0:
            raise BenchError(f"--delay must be >= 0 seconds, got {self.delay}")
        local = all(urlsplit(u).hostname in LOCAL_HOSTS for u in (self.base_url, self.image_base_url))
        if self.delay < POLITE_DELAY_SECONDS and not local:
            raise BenchError(f"--delay {self.delay} is below {POLITE_DELAY_SECONDS} s; shorter delays are "
                             "only allowed against a local test site (127.0.0.1 / localhost)")

    @property
    def paths(self) -> CrawlPaths:
        return CrawlPaths(self.out)

    def to_json(self) -> dict:
        record = asdict(self)
        record["out"] = str(self.out)
        record["categories"] = list(self.categories)
        return record

    def source_summary(self) -> dict:
        """The part of the config that says where the data came from (recorded in the manifest)."""
        return {"base_url": self.base_url, "image_base_url": self.image_base_url,
                "categories": list(self.categories), "max_items": self.max_items}

    def save(self) -> None:
        self.paths.root.mkdir(parents=True, exist_ok=True)
        self.paths.config.write_text(json.dumps(self.to_json(), indent=2, sort_keys=True) + "\n")

    @classmethod
    def load(cls, out: Path) -> CrawlConfig:
        record = json.loads(CrawlPaths(Path(out)).config.read_text())
        record["out"] = out
        record["categories"] = tuple(record.get("categories", ()))
        return cls(**record)


def parse_categories(text: str | None) -> tuple[str, ...]:
    """'65, 768,65.635' -> ('65', '768', '65.635'); None or '' -> () (the whole tree)."""
    if not text:
        return ()
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _checked_url(flag: str, url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise BenchError(f"{flag} must be an http(s) URL like https://www.bricklink.com, got '{url}'")
    return url.rstrip("/")


def _checked_category(category: str) -> str:
    if not all(piece.isdigit() for piece in category.split(".")):
        raise BenchError(f"--categories takes BrickLink category ids like 65 or 65.635, got '{category}'")
    return category


def user_agent() -> str:
    """Says who is asking and how politely, so a site operator can tell this crawler apart."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        release = version("bench")
    except PackageNotFoundError:
        release = "dev"
    return (f"bench-lego-dataset/{release} (GAN research benchmark 'bench'; builds a local, never "
            "redistributed dataset; one request at a time, obeys robots.txt)")


def scrapy_settings(config: CrawlConfig) -> dict:
    """Scrapy settings for a polite crawl; the politeness is the default, not an option."""
    paths = config.paths
    return {
        "BOT_NAME": "bench-lego-dataset",
        "USER_AGENT": user_agent(),
        "ROBOTSTXT_OBEY": True,
        # One request at a time, at least `delay` apart: no jitter, because jitter would go below the delay.
        "CONCURRENT_REQUESTS": 1,
        "CONCURRENT_REQUESTS_PER_DOMAIN": 1,
        "DOWNLOAD_DELAY": config.delay,
        "DOWNLOAD_DELAY_JITTER": 0.0,
        # AutoThrottle only ever lengthens the delay (its floor is DOWNLOAD_DELAY) when the site slows down.
        "AUTOTHROTTLE_ENABLED": True,
        "AUTOTHROTTLE_START_DELAY": config.delay,
        "AUTOTHROTTLE_MAX_DELAY": 60.0,
        "AUTOTHROTTLE_TARGET_CONCURRENCY": 1.0,
        "RETRY_ENABLED": True,
        "RETRY_TIMES": RETRY_TIMES,
        "RETRY_HTTP_CODES": RETRY_HTTP_CODES,
        "BENCH_BACKOFF_BASE_SECONDS": max(config.delay, 0.01),
        "BENCH_MAX_RETRY_AFTER_SECONDS": 300.0,
        "DOWNLOADER_MIDDLEWARES": {
            "scrapy.downloadermiddlewares.retry.RetryMiddleware": None,
            "scrapers.middlewares.BackoffRetryMiddleware": 550,
            # Above the HTTP cache (900) so a blocking page is recognised before it could be cached.
            "scrapers.middlewares.StopOnBlockingPage": 950,
            # Below the retries (550): sees only the failures they gave up on.
            "scrapers.middlewares.RecordNetworkErrors": 50,
        },
        "EXTENSIONS": {"scrapers.progress.CrawlProgress": 500},
        # The cache makes a rerun or a resumed crawl fetch nothing twice. Error answers are never cached.
        "HTTPCACHE_ENABLED": True,
        "HTTPCACHE_DIR": str(paths.http_cache),
        "HTTPCACHE_EXPIRATION_SECS": 0,
        "HTTPCACHE_IGNORE_HTTP_CODES": [*RETRY_HTTP_CODES, 403],
        "HTTPCACHE_GZIP": True,
        "ITEM_PIPELINES": {
            "scrapers.pipelines.MinifigImagesPipeline": 100,
            "scrapers.pipelines.ItemsJsonlWriter": 800,
        },
        "FILES_STORE": str(paths.images),
        "FILES_EXPIRES": 36500,  # a stored image is never fetched again; delete it to refetch
        "DOWNLOAD_TIMEOUT": 60,
        "DEFAULT_REQUEST_HEADERS": {"Accept": "text/html,image/png,*/*;q=0.8", "Accept-Language": "en"},
        "TELNETCONSOLE_ENABLED": False,  # a crawl opens no listening ports
        "REMOTE_CONTROL_ENABLED": False,
        "TWISTED_REACTOR": "twisted.internet.asyncioreactor.AsyncioSelectorReactor",
        "LOG_LEVEL": "INFO",
        "LOG_FILE": str(paths.log),  # the screen gets one progress line (scrapers.progress), the file the rest
        "LOG_FILE_APPEND": False,
        "BENCH_CRAWL_CONFIG": config.to_json(),
    }
