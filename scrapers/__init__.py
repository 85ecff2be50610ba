"""The BrickLink minifigure spider and the LEGO dataset builder.

`scrapers.crawl` runs the spider (politely: robots.txt, one request at a time, >= 1 s apart, HTTP cache);
`scrapers.dataset_builder` turns a finished crawl into data/lego/{minifigs,faces}/, labels.csv and
manifest.json.
Nothing here imports Scrapy at module import time except the spider, middleware and pipeline modules.
"""
