"""Readers for the four kinds of BrickLink catalogue page, and a recogniser for pages that are not data.

Each function takes a parsel `Selector` of one page and returns plain values, so it can be checked on a
string. Selectors follow shared/research/bricklink.md (rebuilt from public scrapers): where two layouts are
known, both are read, and a page that yields nothing yields an empty result rather than an exception.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from parsel import Selector

from scrapers.face_labels import Part


@dataclass(frozen=True)
class Category:
    id: str  # catString: '65' or '65.635'
    name: str
    count: int | None


@dataclass(frozen=True)
class ListPage:
    item_numbers: list[str]
    page: int | None
    pages: int | None
    next_href: str | None  # as written in the page; resolve against the page URL


@dataclass(frozen=True)
class ItemPage:
    number: str
    name: str
    category: str
    subcategory: str
    year: int | None
    image_url: str  # as written in the page ('' when the page names none)


def _query(href: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(href).query).items()}


def _text(parts: list[str]) -> str:
    return " ".join(" ".join(parts).split())


def parse_category_tree(page: Selector) -> list[Category]:
    """Minifigure categories linked from catalogTree.asp?itemType=M, in page order, each once."""
    found: dict[str, Category] = {}
    for link in page.css('a[href*="catalogList.asp?"]'):
        query = _query(link.attrib["href"])
        category_id = query.get("catString", "")
        if query.get("catType", "M") != "M" or not category_id or category_id in found:
            continue
        name = _text(link.css("b ::text").getall()) or _text(link.css("::text").getall())
        count = re.search(r"\((\d+)\)", _text(link.css("span ::text").getall()))
        found[category_id] = Category(category_id, name, int(count.group(1)) if count else None)
    return list(found.values())


def parse_list_page(page: Selector) -> ListPage:
    """Item numbers of one catalogList.asp page (in order), 'Page X of Y' and the Next link."""
    links = page.css("table.catalog-list__body-main") or page
    numbers: list[str] = []
    hrefs = links.xpath('.//a[contains(@href, "catalogitem.page?") or contains(@href, "catalogItem.asp?")]'
                        '/@href')
    for href in hrefs.getall():
        number = _query(href).get("M")
        if number and number not in numbers:
            numbers.append(number)
    pagination = page.css("div.catalog-list__pagination--top") or page
    position = re.search(r"Page\s+(\d+)\s+of\s+(\d+)", _text(pagination.css("::text").getall()))
    next_href = pagination.xpath('.//a[normalize-space()="Next"]/@href').get()
    return ListPage(numbers, int(position.group(1)) if position else None,
                    int(position.group(2)) if position else None, next_href)


def _item_script_fields(page: Selector) -> dict[str, str]:
    """The `var _var_item = {...}` block: key: 'value' pairs, with JavaScript escapes undone."""
    script = next((s for s in page.css("script::text").getall() if "_var_item" in s), "")
    pairs = re.findall(r"(\w+)\s*:\s*'((?:[^'\\]|\\.)*)'", script)
    return {key: html.unescape(re.sub(r"\\(.)", r"\1", value)) for key, value in pairs}


def parse_item_page(page: Selector, number: str) -> ItemPage:
    """Name, category, subcategory, year and main image URL of catalogitem.page?M=<number>."""
    fields = _item_script_fields(page)
    title = _text(page.css("title::text").getall())
    title_match = re.search(r"Minifig\s+\S+\s*:\s*(.*?)\s*\[(.*?)\]", title)
    name = (_text(page.css("h1#item-name-title ::text").getall()) or fields.get("strItemName", "")
            or (title_match.group(1) if title_match else number))
    breadcrumb = [_text(a.css("::text").getall())
                  for a in page.css('#content a[href*="catalogList.asp"][href*="catString="]')]
    if not breadcrumb and title_match:
        breadcrumb = [piece.strip() for piece in title_match.group(2).split(":")]
    year = re.search(r"\d{4}", _text(page.css("#yearReleasedSec ::text").getall()))
    image_url = fields.get("strMainLImgUrl", "") or page.css("img.pciImageMain::attr(src)").get("") or ""
    return ItemPage(number, name, breadcrumb[0] if breadcrumb else "", " / ".join(breadcrumb[1:]),
                    int(year.group(0)) if year else None, image_url.strip())


def parse_inventory_page(page: Selector) -> list[Part]:
    """The parts of catalogItemInv.asp?M=<number>: each row's bold name and its catalogue category link."""
    parts = []
    for row in page.css("tr.IV_ITEM"):
        name = _text(row.css("b ::text").getall())
        category_links = row.css('a[href*="catalogList.asp"][href*="catType=P"]')
        category = _text(category_links[-1].css("::text").getall()) if category_links else ""
        if name or category:
            parts.append(Part(name, category))
    return parts


def blocking_page_reason(page: Selector) -> str | None:
    """Why this page is not catalogue data (quota exceeded, a firewall challenge), or None when it is data."""
    title = _text(page.css("#blErrorTitle ::text").getall())
    if title:
        detail = _text(page.css(".blErrorDetail pre ::text").getall()
                       or page.css(".blErrorDetail ::text").getall())
        return f"BrickLink answered '{title}'" + (f" ({detail})" if detail else "")
    if page.css("#challenge-container, .challenge-container") or "challenge-container" in page.get():
        return "a web-application-firewall challenge page came back instead of the catalogue"
    return None
