"""Downloader middlewares that keep the crawl polite when the site pushes back.

- `BackoffRetryMiddleware`: Scrapy's retries, but waiting before each one (Retry-After, else doubling from the
  delay); a 429 that outlasts every retry, or a Retry-After too long to sit out, stops the crawl.
- `StopOnBlockingPage`: a quota-exceeded page, a firewall challenge or a redirect to BrickLink's error page
  stops the crawl with a one-line reason. It sits above the HTTP cache so such a page is never cached.

A stop records its reason in the stats under `STOP_MESSAGE` for `scrapers.crawl` to report.
"""

from __future__ import annotations

import asyncio
import logging

from scrapy.downloadermiddlewares.retry import RetryMiddleware
from scrapy.exceptions import IgnoreRequest
from scrapy.http import Request, Response, TextResponse
from scrapy.utils.defer import deferred_from_coro
from scrapy.utils.response import response_status_message

from scrapers.pages import blocking_page_reason

log = logging.getLogger(__name__)

STOP_MESSAGE = "bench/stop_message"
STOP_REASON = "blocked"


def crawler_stopped(crawler) -> bool:
    return crawler.stats.get_value(STOP_MESSAGE) is not None


def stop_crawl(crawler, message: str) -> None:
    """Close the spider once, keeping the first reason: later pages may only be fallout of the first block."""
    if not crawler_stopped(crawler):
        crawler.stats.set_value(STOP_MESSAGE, message)
        log.error("stopping the crawl: %s", message)
        deferred_from_coro(crawler.engine.close_spider_async(reason=STOP_REASON))


def _retry_after_seconds(response: Response) -> float | None:
    value = response.headers.get(b"Retry-After")
    try:
        return float(value.decode()) if value else None
    except ValueError:  # an HTTP date; the doubling backoff is a fair stand-in
        return None


class BackoffRetryMiddleware(RetryMiddleware):
    @classmethod
    def from_crawler(cls, crawler):
        middleware = super().from_crawler(crawler)
        middleware.backoff_base = crawler.settings.getfloat("BENCH_BACKOFF_BASE_SECONDS", 1.0)
        middleware.max_retry_after = crawler.settings.getfloat("BENCH_MAX_RETRY_AFTER_SECONDS", 300.0)
        return middleware

    async def process_response(self, request: Request, response: Response) -> Request | Response:
        if request.meta.get("dont_retry", False) or response.status not in self.retry_http_codes:
            return response
        attempt = request.meta.get("retry_times", 0)
        retry_after = _retry_after_seconds(response)
        if retry_after is not None and retry_after > self.max_retry_after:
            stop_crawl(self.crawler, f"the site answered {response.status} at {request.url} and asked to "
                                     f"wait {retry_after:.0f} s; rerun `bench data build lego` later "
                                     "to resume")
            raise IgnoreRequest("asked to wait too long")
        retry = self._retry(request, response_status_message(response.status))
        if retry is None:
            if response.status == 429:
                stop_crawl(self.crawler, f"the site kept answering 429 Too Many Requests at {request.url} "
                                         f"after {attempt} retries; wait and rerun `bench data build lego` "
                                         "to resume")
                raise IgnoreRequest("too many requests")
            return response
        wait = max(retry_after or 0.0, self.backoff_base * 2**attempt)
        log.info("%s answered %s; retrying in %.2f s", request.url, response.status, wait)
        await asyncio.sleep(wait)
        return retry


class StopOnBlockingPage:
    def __init__(self, crawler):
        self.crawler = crawler

    @classmethod
    def from_crawler(cls, crawler):
        return cls(crawler)

    def process_request(self, request: Request) -> None:
        # Closing takes a moment; nothing more goes out meanwhile. Cached pages (answered below) still flow.
        if crawler_stopped(self.crawler):
            raise IgnoreRequest("the crawl is stopping")

    def process_response(self, request: Request, response: Response) -> Response:
        location = response.headers.get(b"Location", b"").decode("latin-1")
        if "error.page" in location or "error.page" in response.url:
            reason = f"BrickLink redirected to its error page ({location or response.url})"
        elif isinstance(response, TextResponse):
            reason = blocking_page_reason(response.selector)
        else:
            reason = None
        if reason is None:
            return response
        stop_crawl(self.crawler, f"{reason} at {request.url}; the crawl stopped, pages fetched so far are "
                                 "cached: wait (a quota resets daily) and rerun `bench data build lego` "
                                 "to resume")
        raise IgnoreRequest(reason)


NETWORK_ERROR = "bench/first_network_error"


class RecordNetworkErrors:
    """Keeps the first request that failed for good (after Scrapy's retries), e.g. "connection refused to URL",
    so a crawl that found nothing can say why in one line. Placed below the retry middleware, it sees only the
    failures the retries gave up on."""

    def __init__(self, crawler):
        self.crawler = crawler

    @classmethod
    def from_crawler(cls, crawler):
        return cls(crawler)

    def process_exception(self, request: Request, exception: Exception) -> None:
        if self.crawler.stats.get_value(NETWORK_ERROR) is None and not isinstance(exception, IgnoreRequest):
            self.crawler.stats.set_value(NETWORK_ERROR, f"{network_error_text(exception)} to {request.url}")


def network_error_text(exception: Exception) -> str:
    """'connection refused', 'DNS lookup failed', 'timed out'... from Twisted's exception names."""
    name = type(exception).__name__
    known = {"ConnectionRefusedError": "connection refused", "DownloadConnectionRefusedError": "connection refused",
             "DNSLookupError": "DNS lookup failed", "TimeoutError": "timed out", "TCPTimedOutError": "timed out",
             "DownloadTimeoutError": "timed out", "ConnectError": "cannot connect",
             "ConnectionLost": "connection lost", "ResponseNeverReceived": "no response"}
    return known.get(name, f"{name}: {str(exception).splitlines()[0][:120] if str(exception) else ''}".rstrip(": "))
