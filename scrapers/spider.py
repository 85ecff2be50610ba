"""The BrickLink minifigure spider: category tree -> list pages -> item page -> inventory page -> one item.

Categories are walked one after another and their list pages in order (each page requested from the previous
one), so the items found, and which of them `max_items` keeps, are the same on every run. Item and inventory
pages outrank list pages in the queue, so each figure is finished before the next list page is read.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import quote, urlsplit

import scrapy

from scrapers.face_labels import face_label
from scrapers.middlewares import crawler_stopped
from scrapers.pages import parse_category_tree, parse_inventory_page, parse_item_page, parse_list_page
from scrapers.settings import CrawlConfig

log = logging.getLogger(__name__)

# Higher runs first. Items of a page count down from ITEM_PRIORITY so they are fetched in page order (the
# queue is last-in first-out among equals); a list page holds at most a few hundred rows.
LIST_PRIORITY, ITEM_PRIORITY, INVENTORY_PRIORITY = 0, 10_000, 20_000


def resolve_image_url(found: str, item_number: str, base_url: str, image_base_url: str) -> str:
    """An absolute image URL from the page is used as is; '//host/...' takes the base URL's scheme; a bare
    path, or nothing at all, goes to the image base URL (BrickLink's main-image path when nothing is
    found)."""
    if found.startswith("//"):
        return f"{urlsplit(base_url).scheme}:{found}"
    if urlsplit(found).scheme in ("http", "https"):
        return found
    if not found:
        found = f"/ItemImage/MN/0/{quote(item_number)}.png"
    return f"{image_base_url}/{found.lstrip('/')}"


def crawl_date(response: scrapy.http.Response) -> str:
    """The day the page was fetched, from its Date header: a page replayed from the cache keeps its date."""
    header = response.headers.get(b"Date")
    try:
        return parsedate_to_datetime(header.decode()).date().isoformat()
    except (AttributeError, TypeError, ValueError):
        return datetime.now(UTC).date().isoformat()


class MinifigSpider(scrapy.Spider):
    name = "bricklink-minifigs"

    def __init__(self, config: CrawlConfig, **kwargs):
        super().__init__(**kwargs)
        self.config = config
        self.found: list[str] = []  # item numbers in discovery order, each once

    @property
    def full(self) -> bool:
        return self.config.max_items is not None and len(self.found) >= self.config.max_items

    async def start(self):
        if self.config.categories:
            request = self._next_category(list(self.config.categories))
            if request is not None:
                yield request
        else:
            yield scrapy.Request(f"{self.config.base_url}/catalogTree.asp?itemType=M",
                                 callback=self.parse_tree)

    def parse_tree(self, response):
        # A top-level category's list includes its subcategories' figures: subcategories are not walked again.
        categories = [c.id for c in parse_category_tree(response.selector) if "." not in c.id]
        log.info("category tree: %d minifigure categories", len(categories))
        request = self._next_category(categories)
        if request is not None:
            yield request

    def _next_category(self, remaining: list[str]) -> scrapy.Request | None:
        if not remaining or self.full:
            return None
        category, rest = remaining[0], remaining[1:]
        return scrapy.Request(f"{self.config.base_url}/catalogList.asp?catType=M&catString={category}",
                              callback=self.parse_list, priority=LIST_PRIORITY,
                              cb_kwargs={"category": category, "remaining": rest, "first_items": []})

    def parse_list(self, response, category: str, remaining: list[str], first_items: list[str]):
        page = parse_list_page(response.selector)
        # A page number past the end may answer with an earlier page: a repeated first item ends the list.
        repeated = bool(page.item_numbers) and page.item_numbers[0] in first_items
        if not repeated:
            for row, number in enumerate(page.item_numbers):
                if self.full:
                    break
                if number not in self.found:
                    self.found.append(number)
                    item_url = f"{self.config.base_url}/v2/catalog/catalogitem.page?M={quote(number)}"
                    yield scrapy.Request(item_url, callback=self.parse_item, priority=ITEM_PRIORITY - row,
                                         cb_kwargs={"number": number})
        next_href = page.next_href
        if next_href is None and page.page is not None and page.pages is not None and page.page < page.pages:
            # 'Page X of Y' without a Next link (scripted pagination): ask for page X + 1 by its number.
            next_href = (f"{self.config.base_url}/catalogList.asp?catType=M&catString={category}"
                         f"&pg={page.page + 1}")
        last_page = page.pages is not None and page.page is not None and page.page >= page.pages
        if next_href and page.item_numbers and not (repeated or last_page or self.full):
            yield response.follow(next_href, callback=self.parse_list, priority=LIST_PRIORITY,
                                  cb_kwargs={"category": category, "remaining": remaining,
                                             "first_items": [*first_items, page.item_numbers[0]]})
        else:
            log.info("category %s: done after %d pages", category, len(first_items) + 1)
            request = self._next_category(remaining)
            if request is not None:
                yield request

    def parse_item(self, response, number: str):
        page = parse_item_page(response.selector, number)
        item = {
            "item": number,
            "name": page.name,
            "category": page.category,
            "subcategory": page.subcategory,
            "year": page.year,
            "page_url": response.url,
            "image_url": resolve_image_url(page.image_url, number, self.config.base_url,
                                           self.config.image_base_url),
            "crawl_date": crawl_date(response),
        }
        yield scrapy.Request(f"{self.config.base_url}/catalogItemInv.asp?M={quote(number)}",
                             callback=self.parse_inventory, errback=self.inventory_failed,
                             priority=INVENTORY_PRIORITY, meta={"handle_httpstatus_list": [404]},
                             cb_kwargs={"item": item})

    def parse_inventory(self, response, item: dict):
        parts = parse_inventory_page(response.selector) if response.status == 200 else None
        return self._labelled(item, parts)

    def inventory_failed(self, failure):
        # Forbidden by robots.txt, or a network error that outlived the retries: the name is all there is.
        if crawler_stopped(self.crawler):
            return None
        item = failure.request.cb_kwargs["item"]
        log.warning("inventory of %s not read (%s); labelling it from its name", item["item"],
                    failure.getErrorMessage())
        return self._labelled(item, None)

    @staticmethod
    def _labelled(item: dict, parts) -> dict:
        label = face_label(parts, item["name"])
        return {**item, "face_label": label.label, "label_source": label.source,
                "label_evidence": label.evidence, "file_urls": [item["image_url"]]}
