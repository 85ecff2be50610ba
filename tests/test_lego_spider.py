"""The LEGO datasets, end to end: the spider crawls a BrickLink-shaped site served on 127.0.0.1 (a real HTTP
server, tests/fixtures/bricklink_site/, whose README lists what each item is there to test) and the builder
turns the crawl into lego-minifigs and lego-faces.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import statistics
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from parsel import Selector
from PIL import Image, ImageDraw
from typer.testing import CliRunner

from bench.data import load_dataset
from bench.data.cli import app
from bench.errors import BenchError, DatasetNotFound
from scrapers.face_labels import FROM_INVENTORY, FROM_NAME, UNLABELLED, FaceLabel, Part, face_label
from scrapers.pages import (
    ItemPage,
    ListPage,
    blocking_page_reason,
    parse_inventory_page,
    parse_item_page,
    parse_list_page,
)
from scrapers.settings import CrawlConfig, scrapy_settings

SITE = Path(__file__).parent / "fixtures" / "bricklink_site"
SITE_DATE = "Sat, 01 Mar 2025 12:00:00 GMT"  # every page's Date header: the crawl date the manifest records
TEST_DELAY = "0.05"

FACES = {
    "helmet": {"sw0001", "cty0002", "sh0001"},
    "hair": {"sw0002", "cty0004", "sh0002"},
    "hat": {"sw0004", "cty0001"},
    "bald": {"sw0003", "sh0003"},
}
MINIFIGS = set().union(*FACES.values()) | {"sh0005"}  # sh0005 has no label, so a minifig without a face


# --- the site's images, drawn here rather than committed ---

YELLOW = (250, 200, 30, 255)


def figure_png(headwear: str, torso: tuple, canvas: tuple[int, int] = (120, 200), opaque: bool = False
               ) -> bytes:
    """A minifigure-shaped drawing: headwear, head, torso with arms, legs; transparent unless `opaque`."""
    image = Image.new("RGBA", canvas, (255, 255, 255, 255) if opaque else (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    cx, top = canvas[0] // 2, 14
    draw.rounded_rectangle((cx - 16, top + 16, cx + 16, top + 50), 6, fill=YELLOW)  # head
    if headwear == "helmet":
        draw.ellipse((cx - 24, top, cx + 24, top + 44), fill=(150, 150, 165, 255))
    elif headwear == "hat":
        draw.rectangle((cx - 26, top + 12, cx + 26, top + 18), fill=(20, 20, 20, 255))
        draw.rectangle((cx - 16, top, cx + 16, top + 14), fill=(20, 20, 20, 255))
    elif headwear == "hair":
        draw.pieslice((cx - 19, top + 4, cx + 19, top + 40), 180, 360, fill=(90, 50, 20, 255))
    draw.polygon([(cx - 22, top + 52), (cx + 22, top + 52), (cx + 30, top + 104), (cx - 30, top + 104)],
                 fill=torso)
    draw.rectangle((cx - 40, top + 56, cx - 26, top + 100), fill=torso)  # arms
    draw.rectangle((cx + 26, top + 56, cx + 40, top + 100), fill=torso)
    draw.rectangle((cx - 28, top + 104, cx - 2, top + 166), fill=(40, 40, 120, 255))  # legs
    draw.rectangle((cx + 2, top + 104, cx + 28, top + 166), fill=(40, 40, 120, 255))
    if opaque:
        image = image.convert("RGB")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def site_images() -> dict[str, bytes]:
    images = {
        "sw0001": figure_png("helmet", (235, 235, 235, 255)),
        "sw0002": figure_png("hair", (220, 210, 180, 255), (130, 210), opaque=True),
        "sw0003": figure_png("bald", (30, 30, 30, 255), (110, 190)),
        "sw0004": figure_png("hat", (90, 90, 90, 255), (140, 220)),
        "cty0001": figure_png("hat", (10, 30, 90, 255), opaque=True),
        "cty0002": figure_png("helmet", (240, 120, 20, 255), (120, 230)),
        "cty0004": figure_png("hair", (250, 250, 250, 255)),
        "sh0001": figure_png("helmet", (170, 20, 20, 255), (150, 200)),
        "sh0002": figure_png("hair", (200, 30, 40, 255)),
        "sh0003": figure_png("bald", (90, 30, 120, 255)),
        "sh0005": figure_png("bald", (20, 140, 40, 255)),
    }
    images["sw0005"] = images["sw0001"]  # a re-released figure with the very same picture
    images["cty0003"] = images["sw0003"][:60] + b"\x00 truncated in transit"  # corrupt
    empty = io.BytesIO()
    Image.new("RGBA", (100, 180), (0, 0, 0, 0)).save(empty, format="PNG")
    images["sh0004"] = empty.getvalue()  # a valid PNG with nothing on it
    return images


# --- the site ---

@dataclass
class Hit:
    path: str  # path and query, as requested
    status: int
    user_agent: str
    at: float
    quota_page: bool = False


@dataclass
class BrickLinkTestSite:
    """Serves tests/fixtures/bricklink_site/ on 127.0.0.1, logging every request. sw0003's item page answers
    429 the first time; with `quota_after` set, every request after that many (robots.txt aside) gets the
    quota page."""

    quota_after: int | None = None
    hits: list[Hit] = field(default_factory=list)
    max_in_flight: int = 0

    def __post_init__(self):
        self.images = site_images()
        self._lock = threading.Lock()
        self._in_flight = 0
        self._answered_429: set[str] = set()
        site = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                arrived = time.monotonic()
                with site._lock:
                    site._in_flight += 1
                    site.max_in_flight = max(site.max_in_flight, site._in_flight)
                try:
                    status, content_type, body, quota = site.answer(self.path)
                    with site._lock:
                        site.hits.append(Hit(self.path, status, self.headers.get("User-Agent", ""), arrived,
                                             quota))
                    self.send_response(status)
                    self.send_header("Content-Type", content_type)
                    self.send_header("Content-Length", str(len(body)))
                    if status == 429:
                        self.send_header("Retry-After", "0")
                    self.end_headers()
                    self.wfile.write(body)
                finally:
                    with site._lock:
                        site._in_flight -= 1

            def date_time_string(self, timestamp=None):
                return SITE_DATE

            def log_message(self, format, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def page(self, relative: str) -> tuple[int, str, bytes, bool]:
        file = SITE / relative
        if not file.exists():
            return 404, "text/html", b"<html><body>Not found</body></html>", False
        host = self.url.removeprefix("http://")
        return 200, "text/html; charset=utf-8", file.read_text().replace("{{HOST}}", host).encode(), False

    def answer(self, raw_path: str) -> tuple[int, str, bytes, bool]:
        url = urlsplit(raw_path)
        query = {key: values[0] for key, values in parse_qs(url.query).items()}
        if url.path == "/robots.txt":
            return 200, "text/plain", (SITE / "robots.txt").read_bytes(), False
        with self._lock:
            served = sum(1 for hit in self.hits if not hit.path.startswith("/robots.txt"))
        if self.quota_after is not None and served >= self.quota_after:
            return 200, "text/html; charset=utf-8", (SITE / "quota.html").read_bytes(), True
        if url.path == "/catalogTree.asp" and query.get("itemType") == "M":
            return self.page("catalogTree.html")
        if url.path == "/catalogList.asp":
            return self.page(f"list/{query.get('catString')}-{query.get('pg', '1')}.html")
        if url.path == "/v2/catalog/catalogitem.page":
            if query.get("M") == "sw0003" and raw_path not in self._answered_429:
                self._answered_429.add(raw_path)
                return 429, "text/html", b"<html><body>Too Many Requests</body></html>", False
            return self.page(f"items/{query.get('M')}.html")
        if url.path == "/catalogItemInv.asp":
            return self.page(f"inventories/{query.get('M')}.html")
        if url.path.startswith("/ItemImage/MN/0/") and url.path.endswith(".png"):
            number = url.path.removeprefix("/ItemImage/MN/0/").removesuffix(".png")
            if number in self.images:
                return 200, "image/png", self.images[number], False
        return 404, "text/html", b"<html><body>Not found</body></html>", False


def build_lego(site: BrickLinkTestSite, out: Path, *extra: str):
    return CliRunner().invoke(app, ["build", "lego", "--out", str(out), "--base-url", site.url,
                                    "--image-base-url", site.url, "--delay", TEST_DELAY, *extra])


def snapshot(out: Path) -> dict[str, str]:
    """sha256 of every file the builder owns."""
    return {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(out.rglob("*")) if p.is_file() and ".crawl" not in p.relative_to(out).parts}


def stems(folder: Path) -> set[str]:
    return {p.stem for p in folder.glob("*.png")}


@dataclass
class Built:
    data_root: Path
    out: Path
    first_hits: list[Hit]
    second_hits: list[Hit]
    first_snapshot: dict[str, str]
    second_snapshot: dict[str, str]
    warnings: list[str]
    max_in_flight: int


class _ListHandler(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append(record.getMessage())


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Built:
    """The whole catalogue crawled and built once, then built a second time from the same crawl."""
    data_root = tmp_path_factory.mktemp("data")
    out = data_root / "lego"
    handler = _ListHandler()
    logging.getLogger("scrapers").addHandler(handler)
    try:
        with BrickLinkTestSite() as site:
            first = build_lego(site, out)
            assert first.exit_code == 0, f"{first.output}\n{first.exception!r}"
            first_hits, first_snapshot = list(site.hits), snapshot(out)
            second = build_lego(site, out)
            assert second.exit_code == 0, f"{second.output}\n{second.exception!r}"
            second_hits = site.hits[len(first_hits):]
            max_in_flight = site.max_in_flight
    finally:
        logging.getLogger("scrapers").removeHandler(handler)
    return Built(data_root, out, first_hits, second_hits, first_snapshot, snapshot(out), handler.messages,
                 max_in_flight)


# --- what the build gives ---

@pytest.mark.slow
@pytest.mark.process
def test_each_face_label_gets_exactly_its_figures(built):
    for label, numbers in FACES.items():
        assert stems(built.out / "faces" / label) == numbers, label
    manifest = json.loads((built.out / "manifest.json").read_text())
    assert manifest["counts"]["faces_per_label"] == {"bald": 2, "hair": 3, "hat": 2, "helmet": 3}
    assert manifest["counts"]["faces"] == 10
    assert manifest["counts"]["unlabelled"] == 1


@pytest.mark.slow
def test_minifigs_are_every_usable_figure_once(built):
    assert stems(built.out / "minifigs") == MINIFIGS
    manifest = json.loads((built.out / "manifest.json").read_text())
    assert manifest["counts"]["crawled"] == 14
    assert manifest["counts"]["minifigs"] == 11
    assert manifest["duplicates"] == [{"item": "sw0005", "same_image_as": "sw0001"}]


@pytest.mark.slow
def test_minifigs_are_150px_and_faces_100px_rgb(built):
    minifigs, faces = sorted((built.out / "minifigs").glob("*.png")), sorted((built.out / "faces").rglob("*.png"))
    assert len(minifigs) == 11 and len(faces) == 10  # the loops below check every image, and there are images
    for path in minifigs:
        with Image.open(path) as image:
            assert (image.size, image.mode) == ((150, 150), "RGB"), path.name
    for path in faces:
        with Image.open(path) as image:
            assert (image.size, image.mode) == ((100, 100), "RGB"), path.name


@pytest.mark.slow
def test_transparent_background_becomes_white(built):
    with Image.open(built.out / "minifigs" / "sw0003.png") as image:  # drawn on a transparent canvas
        assert image.getpixel((0, 0)) == (255, 255, 255)
        assert image.getpixel((75, 75)) != (255, 255, 255)  # the figure is centred


@pytest.mark.slow
def test_manifest_hashes_match_the_files_with_source_and_crawl_date(built):
    manifest = json.loads((built.out / "manifest.json").read_text())
    on_disk = {path for path in built.first_snapshot if path.endswith(".png")}
    assert set(manifest["files"]) == on_disk
    for relative, entry in manifest["files"].items():
        assert entry["sha256"] == hashlib.sha256((built.out / relative).read_bytes()).hexdigest()
        assert entry["crawl_date"] == "2025-03-01"
    site_url = manifest["files"]["minifigs/sw0001.png"]["source_url"].split("/ItemImage/")[0]
    assert site_url.startswith("http://127.0.0.1:")  # '//host/...' took the base URL's scheme
    assert manifest["files"]["minifigs/sh0001.png"]["source_url"] == f"{site_url}/ItemImage/MN/0/sh0001.png"
    labels_csv = (built.out / "labels.csv").read_bytes()
    assert manifest["labels_csv_sha256"] == hashlib.sha256(labels_csv).hexdigest()


@pytest.mark.slow
def test_labels_csv_records_each_figure_with_its_label_source(built):
    lines = (built.out / "labels.csv").read_text().splitlines()
    assert lines[0] == "item,name,category,subcategory,year,face_label,label_source"
    rows = {line.split(",")[0]: line for line in lines[1:]}
    assert set(rows) == MINIFIGS
    assert rows["sw0001"] == "sw0001,Stormtrooper,Star Wars,Star Wars Episode 4/5/6,1999,helmet,inventory"
    assert rows["cty0002"].endswith(",2006,helmet,name-keywords")  # its inventory is disallowed by robots.txt
    assert rows["cty0004"].endswith(",2008,hair,name-keywords")  # it has no inventory page
    assert rows["sh0001"].endswith(",helmet,inventory")  # a visor (headgear accessory) does not make a hat
    assert rows["sh0005"] == "sh0005,The Riddler,Super Heroes,The Avengers,2013,,none"


@pytest.mark.slow
def test_corrupt_and_empty_images_are_skipped_and_logged(built):
    manifest = json.loads((built.out / "manifest.json").read_text())
    assert [(s["item"], s["reason"].split(" (")[0]) for s in manifest["skipped"]] == [
        ("cty0003", "corrupt image"), ("sh0004", "empty image")]
    assert any(message.startswith("skipping cty0003: corrupt image") for message in built.warnings)
    assert any(message.startswith("skipping sh0004: empty image") for message in built.warnings)


# --- how politely it was fetched ---

@pytest.mark.slow
def test_no_request_goes_to_a_path_robots_txt_disallows(built):
    from protego import Protego

    robots = Protego.parse((SITE / "robots.txt").read_text())
    paths = [hit.path for hit in built.first_hits]
    assert all(robots.can_fetch(f"http://127.0.0.1{path}", "bench-lego-dataset") for path in paths)
    assert "/catalogItemInv.asp?M=cty0002" not in paths
    assert not [path for path in paths if path.startswith("/catalogPG.asp")]  # linked from every item page


@pytest.mark.slow
def test_a_429_is_retried_after_a_pause(built):
    hits = [hit for hit in built.first_hits if hit.path == "/v2/catalog/catalogitem.page?M=sw0003"]
    assert [hit.status for hit in hits] == [429, 200]
    assert hits[1].at - hits[0].at >= 0.05


@pytest.mark.slow
def test_requests_come_one_at_a_time_apart_and_identified(built):
    assert built.max_in_flight == 1
    hits = built.first_hits
    # --delay 0.05 between sends, seen on the server's clock: the crawl spans at least the sum of the delays
    # and the typical gap is the delay (single gaps are blurred by thread scheduling on a busy machine).
    gaps = [b.at - a.at for a, b in zip(hits, hits[1:], strict=False)]
    assert sum(gaps) >= len(gaps) * 0.05
    assert statistics.median(gaps) >= 0.05
    assert all(hit.user_agent.startswith("bench-lego-dataset/") for hit in built.first_hits)


@pytest.mark.slow
def test_the_crawl_walks_every_category_and_list_page(built):
    paths = [hit.path for hit in built.first_hits]
    assert paths.count("/catalogTree.asp?itemType=M") == 1
    lists = sorted(path for path in paths if path.startswith("/catalogList.asp"))
    assert lists == ["/catalogList.asp?catType=M&catString=65", "/catalogList.asp?catType=M&catString=67",
                     "/catalogList.asp?catType=M&catString=768",
                     "/catalogList.asp?pg=2&catString=65&catType=M"]
    items = {path.split("M=")[1] for path in paths if path.startswith("/v2/catalog/catalogitem.page")}
    assert len(items) == 14


@pytest.mark.slow
def test_a_second_build_makes_no_request_and_writes_the_same_bytes(built):
    assert built.second_hits == []
    assert built.second_snapshot == built.first_snapshot


@pytest.mark.slow
def test_rebuilding_from_the_same_crawl_is_byte_identical(built):
    result = CliRunner().invoke(app, ["build", "lego", "--out", str(built.out), "--no-crawl"])
    assert result.exit_code == 0, result.output
    assert snapshot(built.out) == built.first_snapshot


@pytest.mark.slow
@pytest.mark.process
def test_quota_page_stops_the_crawl_and_a_rerun_resumes_without_refetching(tmp_path):
    out = tmp_path / "lego"
    with BrickLinkTestSite(quota_after=4) as site:
        stopped = build_lego(site, out)
        assert isinstance(stopped.exception, BenchError)
        message = str(stopped.exception)
        assert "Quota Exceeded" in message and "daily page view limit" in message and "rerun" in message
        assert "\n" not in message
        assert sum(hit.quota_page for hit in site.hits) == 1  # stopped at the first quota page
        assert not (out / ".crawl" / "items.jsonl").exists() and not (out / "manifest.json").exists()
        before = list(site.hits)

        site.quota_after = None
        resumed = build_lego(site, out)
        assert resumed.exit_code == 0, f"{resumed.output}\n{resumed.exception!r}"
        after = site.hits[len(before):]
    fetched = {hit.path for hit in before if hit.status == 200 and not hit.quota_page}
    assert fetched and not fetched & {hit.path for hit in after}
    assert stems(out / "minifigs") == MINIFIGS


@pytest.mark.slow
@pytest.mark.process
def test_categories_and_max_items_limit_what_is_crawled(tmp_path):
    out = tmp_path / "lego"
    with BrickLinkTestSite() as site:
        result = build_lego(site, out, "--categories", "67,768", "--max-items", "5")
        assert result.exit_code == 0, f"{result.output}\n{result.exception!r}"
    paths = [hit.path for hit in site.hits]
    assert "/catalogTree.asp?itemType=M" not in paths
    items = [path.split("M=")[1] for path in paths if path.startswith("/v2/catalog/catalogitem.page")]
    assert items == ["cty0001", "cty0002", "cty0003", "cty0004", "sh0001"]
    assert stems(out / "minifigs") == {"cty0001", "cty0002", "cty0004", "sh0001"}  # cty0003 is corrupt
    source = json.loads((out / "manifest.json").read_text())["source"]
    assert (source["categories"], source["max_items"]) == (["67", "768"], 5)


# --- the datasets in the registry, and the CLI ---

@pytest.mark.slow
def test_registry_loads_faces_with_the_four_study_labels(built):
    faces = load_dataset("lego-faces", 64, data_root=built.data_root)
    assert tuple(faces.images.shape) == (10, 3, 64, 64)
    assert faces.classes == ["bald", "hair", "hat", "helmet"]
    assert faces.labels.bincount().tolist() == [2, 3, 2, 3]
    minifigs = load_dataset("lego-minifigs", 64, data_root=built.data_root)
    assert tuple(minifigs.images.shape) == (11, 3, 64, 64) and minifigs.labels is None


@pytest.mark.slow
def test_info_reports_counts_per_label_resolution_and_provenance(built):
    result = CliRunner().invoke(app, ["info", "lego-faces", "--data-root", str(built.data_root)])
    assert result.exit_code == 0, result.output
    assert "lego-faces: 10 images, 100x100 px" in result.output
    assert "labels: bald 2, hair 3, hat 2, helmet 3" in result.output
    assert "crawled 2025-03-01..2025-03-01" in result.output
    assert "skipped: corrupt image 1, empty image 1; duplicates dropped: 1" in result.output


def test_a_missing_build_is_a_one_line_error_naming_the_build_command(tmp_path):
    for name in ("lego-minifigs", "lego-faces"):
        with pytest.raises(DatasetNotFound) as raised:
            load_dataset(name, 64, data_root=tmp_path)
        assert "bench data build lego" in str(raised.value) and "\n" not in str(raised.value)


def test_building_an_unknown_dataset_is_a_bench_error():
    result = CliRunner().invoke(app, ["build", "legos"])
    assert isinstance(result.exception, BenchError) and "lego" in str(result.exception)


# --- the parts, on their own ---

def test_polite_settings_are_the_default(tmp_path):
    settings = scrapy_settings(CrawlConfig(out=tmp_path))
    assert settings["ROBOTSTXT_OBEY"] is True
    assert settings["CONCURRENT_REQUESTS"] == settings["CONCURRENT_REQUESTS_PER_DOMAIN"] == 1
    assert settings["DOWNLOAD_DELAY"] >= 1.0 and settings["DOWNLOAD_DELAY_JITTER"] == 0.0
    assert settings["AUTOTHROTTLE_ENABLED"] is True and settings["HTTPCACHE_ENABLED"] is True
    assert 429 in settings["RETRY_HTTP_CODES"] and 503 in settings["RETRY_HTTP_CODES"]
    assert Path(settings["HTTPCACHE_DIR"]).is_relative_to(tmp_path / ".crawl")
    assert settings["USER_AGENT"].startswith("bench-lego-dataset/")


def test_a_short_delay_is_refused_for_a_remote_site(tmp_path):
    with pytest.raises(BenchError, match="only allowed against a local test site"):
        CrawlConfig(out=tmp_path, delay=0.05)


def test_inventory_decides_the_label_with_headgear_over_hair():
    hair = Part("Minifig, Hair Short", "Minifig, Hair")
    cap = Part("Minifig, Headgear Cap", "Minifig, Headgear")
    helmet = Part("Minifig, Headgear Helmet Motorcycle", "Minifig, Headgear")
    head = Part("Minifig, Head Beard, Black Hair Pattern", "Minifig, Head")
    assert face_label([hair, cap], "Helmet Guy").label == "hat"
    assert face_label([cap, helmet, hair], "x").label == "helmet"
    assert face_label([head, hair], "x").label == "hair"
    assert face_label([head], "Hairy Harry").label == "bald"  # the inventory outranks the name
    assert face_label([head], "x").source == FROM_INVENTORY


def test_the_name_decides_only_without_an_inventory():
    assert face_label(None, "Police - Black Police Hat") == FaceLabel("hat", FROM_NAME, "Hat")
    assert face_label([], "Diver - Yellow Helmet").label == "helmet"
    assert face_label(None, "Captain Rex").label is None  # 'cap' only as a word
    assert face_label(None, "The Riddler") == FaceLabel(None, UNLABELLED, "")


def test_quota_and_firewall_pages_are_recognised_and_data_pages_are_not():
    quota = blocking_page_reason(Selector(text=(SITE / "quota.html").read_text()))
    assert quota.startswith("BrickLink answered 'Quota Exceeded' (You have exceeded")
    waf_page = '<html><body><div id="challenge-container"></div></body></html>'
    waf = blocking_page_reason(Selector(text=waf_page))
    assert "firewall" in waf
    assert blocking_page_reason(Selector(text=(SITE / "items" / "sw0001.html").read_text())) is None


def test_list_pages_give_item_numbers_in_order_and_where_the_next_page_is():
    first = parse_list_page(Selector(text=(SITE / "list" / "65-1.html").read_text()))
    assert first == ListPage(["sw0001", "sw0002", "sw0003"], page=1, pages=2,
                             next_href="/catalogList.asp?pg=2&catString=65&catType=M")
    last = parse_list_page(Selector(text=(SITE / "list" / "65-2.html").read_text()))
    assert (last.item_numbers, last.page, last.pages, last.next_href) == (["sw0004", "sw0005"], 2, 2, None)


def test_item_pages_give_name_category_year_and_main_image():
    page = parse_item_page(Selector(text=(SITE / "items" / "sw0002.html").read_text()), "sw0002")
    assert page == ItemPage("sw0002", "Luke Skywalker (Tatooine)", "Star Wars", "Star Wars Episode 4/5/6",
                            1999, "//{{HOST}}/ItemImage/MN/0/sw0002.png")


def test_inventory_pages_give_each_part_with_its_category():
    parts = parse_inventory_page(Selector(text=(SITE / "inventories" / "sh0001.html").read_text()))
    assert parts[:2] == [Part("Minifig, Headgear Helmet Iron Man", "Minifig, Headgear"),
                         Part("Minifig, Headgear Accessory Visor Iron Man", "Minifig, Headgear Accessory")]
    assert len(parts) == 4


def test_image_urls_resolve_against_the_right_base():
    from scrapers.spider import resolve_image_url

    base, images = "https://www.bricklink.com", "https://img.bricklink.com"
    assert resolve_image_url("//img.example/a.png", "a", base, images) == "https://img.example/a.png"
    assert resolve_image_url("http://mirror/a.png", "a", base, images) == "http://mirror/a.png"
    assert resolve_image_url("/ItemImage/MN/0/a.png", "a", base, images) == f"{images}/ItemImage/MN/0/a.png"
    assert resolve_image_url("", "sw0003", base, images) == f"{images}/ItemImage/MN/0/sw0003.png"
