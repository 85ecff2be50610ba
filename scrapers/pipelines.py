"""Item pipelines: the main image of each minifigure through Scrapy's files pipeline, then the items file.

Images are stored as downloaded (FilesPipeline, not ImagesPipeline, which would re-encode them as JPEG and
lose the transparency the builder composites on white), one file per item, named by item number.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

from scrapy import Request, signals
from scrapy.pipelines.files import FilesPipeline

from scrapers.settings import CrawlPaths


def safe_file_stem(item_number: str) -> str:
    """An item number as a file name: BrickLink numbers are [a-z0-9-] but a mirror's might not be."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", item_number)


class MinifigImagesPipeline(FilesPipeline):
    def get_media_requests(self, item, info):
        # The files store already keeps each image, so the HTTP cache need not hold a second copy.
        return [Request(url, meta={"dont_cache": True}) for url in item.get("file_urls", [])]

    def file_path(self, request, response=None, info=None, *, item=None):
        suffix = PurePosixPath(urlsplit(request.url).path).suffix.lower() or ".png"
        return f"{safe_file_stem(item['item'])}{suffix}"


class ItemsJsonlWriter:
    """Collects items and writes them sorted by item number, only when the crawl finishes: a stopped crawl
    leaves the previous complete items file in place, and its pages stay in the HTTP cache for the rerun."""

    def __init__(self, paths: CrawlPaths):
        self.paths = paths
        self.items: dict[str, dict] = {}

    @classmethod
    def from_crawler(cls, crawler):
        writer = cls(CrawlPaths(Path(crawler.settings["BENCH_CRAWL_CONFIG"]["out"])))
        crawler.signals.connect(writer.spider_closed, signal=signals.spider_closed)
        return writer

    def process_item(self, item):
        record = {key: value for key, value in item.items() if key not in ("file_urls", "files")}
        files = item.get("files") or []
        record["image_file"] = files[0]["path"] if files else None
        self.items[record["item"]] = record
        return item

    def spider_closed(self, spider, reason):
        if reason != "finished":
            return
        self.paths.root.mkdir(parents=True, exist_ok=True)
        partial = self.paths.items.with_suffix(".jsonl.partial")
        with open(partial, "w", encoding="utf-8") as out:
            for number in sorted(self.items):
                out.write(json.dumps(self.items[number], sort_keys=True, ensure_ascii=False) + "\n")
        os.replace(partial, self.paths.items)
