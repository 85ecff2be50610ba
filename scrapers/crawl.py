"""Run the spider, and say in one line why when it stops early.

`crawl_in_subprocess` is what `bench data build lego` calls: Twisted's reactor cannot be started twice in
one process, so each crawl gets a fresh `python -m scrapers.crawl`, which runs `run_crawl` and leaves how it
ended in `<out>/.crawl/last_crawl.json`.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from bench.errors import BenchError
from scrapers.settings import (
    DEFAULT_BASE_URL,
    DEFAULT_IMAGE_BASE_URL,
    POLITE_DELAY_SECONDS,
    CrawlConfig,
    CrawlPaths,
    parse_categories,
    scrapy_settings,
)

# Stats worth keeping from a crawl: what came from the network and what from the cache.
_REPORTED_STATS = ("item_scraped_count", "httpcache/hit", "httpcache/miss", "file_status_count/downloaded",
                   "file_status_count/uptodate", "retry/count", "robotstxt/forbidden")


def run_crawl(config: CrawlConfig) -> dict:
    """Crawl in this process (once per process): the outcome, or BenchError when the crawl stopped."""
    from scrapy.crawler import CrawlerProcess

    # Scrapy (and the spider on it) loads in the crawling subprocess only
    from scrapers.middlewares import NETWORK_ERROR, STOP_MESSAGE
    from scrapers.spider import MinifigSpider

    config.save()
    config.paths.outcome.unlink(missing_ok=True)
    process = CrawlerProcess(scrapy_settings(config))
    crawler = process.create_crawler(MinifigSpider)
    process.crawl(crawler, config=config)
    process.start()
    stats = crawler.stats.get_stats()
    reason = stats.get("finish_reason")
    message = stats.get(STOP_MESSAGE)
    if reason != "finished" and not message:
        message = f"the crawl ended early ({reason}); rerun `bench data build lego` to resume from the cache"
    if reason == "finished" and not stats.get("item_scraped_count") and stats.get(NETWORK_ERROR):
        reason = "network_error"  # nothing found because nothing could be fetched: say so, not "no minifigures"
        message = (f"{stats[NETWORK_ERROR]}; check --base-url and the network, then rerun `bench data build "
                   f"lego` (crawl log: {config.paths.log})")
    outcome = {"finish_reason": reason, "message": message,
               "stats": {key: stats.get(key, 0) for key in _REPORTED_STATS}}
    config.paths.outcome.write_text(json.dumps(outcome, indent=2, sort_keys=True) + "\n")
    if reason != "finished":
        raise BenchError(message)
    return outcome


def crawl_in_subprocess(config: CrawlConfig) -> dict:
    """Run `python -m scrapers.crawl` for `config`, its log streaming here; BenchError on a stop."""
    command = [sys.executable, "-m", "scrapers.crawl", "--out", str(config.out),
               "--base-url", config.base_url, "--image-base-url", config.image_base_url,
               "--delay", repr(config.delay), "--stop-message-to-file-only"]
    if config.categories:
        command += ["--categories", ",".join(config.categories)]
    if config.max_items is not None:
        command += ["--max-items", str(config.max_items)]
    config.paths.outcome.unlink(missing_ok=True)
    returncode = subprocess.run(command, check=False).returncode
    outcome = json.loads(config.paths.outcome.read_text()) if config.paths.outcome.exists() else {}
    if returncode != 0 or outcome.get("finish_reason") != "finished":
        raise BenchError(outcome.get("message")
                         or f"the crawl failed (exit code {returncode}); see its log above")
    return outcome


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scrapers.crawl",
                                     description="Crawl BrickLink's minifigures politely.")
    parser.add_argument("--out", required=True, help="dataset folder; the crawl lives in <out>/.crawl")
    parser.add_argument("--base-url", default=DEFAULT_BASE_URL)
    parser.add_argument("--image-base-url", default=DEFAULT_IMAGE_BASE_URL)
    parser.add_argument("--categories", default=None, help="comma-separated category ids (default: all)")
    parser.add_argument("--max-items", type=int, default=None)
    parser.add_argument("--delay", type=float, default=POLITE_DELAY_SECONDS)
    # Set by crawl_in_subprocess, whose caller prints the stop message itself (read from last_crawl.json).
    parser.add_argument("--stop-message-to-file-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        config = CrawlConfig(out=args.out, base_url=args.base_url, image_base_url=args.image_base_url,
                             categories=parse_categories(args.categories), max_items=args.max_items,
                             delay=args.delay)
        run_crawl(config)
    except BenchError as err:
        reported = CrawlPaths(Path(args.out).resolve()).outcome.exists()
        if not (args.stop_message_to_file_only and reported):
            print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
