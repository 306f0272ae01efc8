# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: insights-kit
#     language: python
#     name: python3
# ---

# %% tags=["parameters"]
source: str = "data/sample"  # management events: file or folder path(s), ';'-separated (relative: repo root)
store: str = ""  # Insights store folder (detect --out); empty: detect in memory from source
region: str = ""  # region to report on; empty: the region with the most insights
since: str = ""  # window start, ISO 8601 UTC (e.g. 2025-03-04T00:00:00Z); empty: start of data
until: str = ""  # window end (exclusive), ISO 8601 UTC; empty: end of data
out_dir: str = ""  # folder for the chart PNG/SVG files; empty: a temporary folder
config: str = ""  # detector config TOML path; empty: the documented defaults
home_region: str = ""  # region that analyses global events; empty: the store's, else the busiest

# %%
# One region of `insights-kit report` (papermill); runs alone with the defaults above (the shipped
# sample, detection in memory). Logic: insights_kit.region_page / insights_kit.charts; all values escaped.
import altair as alt

from insights_kit import region_page

alt.renderers.enable("svg")  # offline: vl-convert renders, no Vega from a CDN
ctx = region_page.load_region(
    source=source, store=store, region=region, since=since, until=until,
    config=config, home_region=home_region, out_dir=out_dir,
)
region_page.show_header(ctx)

# %% [markdown]
# ## Summary

# %%
# NBVAL_CHECK_OUTPUT
print(region_page.summary_text(ctx))

# %%
region_page.show_summary(ctx)
region_page.show_timeline(ctx)

# %% [markdown]
# ## Incidents

# %%
shown = region_page.show_incidents(ctx)
