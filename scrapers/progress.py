"""A Scrapy extension that shows the crawl's progress: figures found, requests made (and how many the HTTP
cache answered), images stored. On a terminal it is one live line; in a log, a line every 25 figures. Scrapy's
own log goes to <out>/.crawl/crawl.log instead of the screen."""

from __future__ import annotations

import time

from scrapy import signals

from bench.progress import Console, duration

LOG_EVERY_ITEMS = 25


class CrawlProgress:
    def __init__(self, crawler):
        self.console = Console()
        self.items = self.requests = self.cached = 0
        self.start = time.perf_counter()
        crawler.signals.connect(self.response_received, signal=signals.response_received)
        crawler.signals.connect(self.item_scraped, signal=signals.item_scraped)
        crawler.signals.connect(self.spider_closed, signal=signals.spider_closed)

    @classmethod
    def from_crawler(cls, crawler):
        return cls(crawler)

    def text(self) -> str:
        return (f"crawl: {self.items} figures, {self.requests} requests ({self.cached} from the cache), "
                f"{duration(time.perf_counter() - self.start)}")

    def response_received(self, response, request, spider):
        self.requests += 1
        self.cached += "cached" in response.flags
        self.console.status(self.text())

    def item_scraped(self, item, response, spider):
        self.items += 1
        self.console.status(self.text())
        if not self.console.live and self.items % LOG_EVERY_ITEMS == 0:
            self.console.say(self.text())

    def spider_closed(self, spider, reason):
        self.console.say(self.text() + ("" if reason == "finished" else f" (stopped: {reason})"))
