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

# %% [markdown]
# # Explore management events
#
# Pick a region and, optionally, a source address or an API. The interactive chart runs
# offline (the Vega bundle comes from the vl-convert package): drag on the top panel to
# select a time range, click an API below to filter the top panel.

# %% tags=["parameters"]
source: str = "data/sample"  # management events: file or folder path(s), ';'-separated (relative: repo root)
region: str = ""  # analysis region; empty: the region with the most events
ip: str = ""  # only calls from this source address; empty: every address
api: str = ""  # only this API, as eventName or serviceName/eventName; empty: every API
since: str = ""  # ISO 8601 UTC start; empty: start of data
until: str = ""  # ISO 8601 UTC end (exclusive); empty: end of data
home_region: str = ""  # region that analyses global events; empty: the busiest region

# %%
import warnings

import altair as alt
import polars as pl
from IPython.display import HTML, display

from insights_kit import charts, detect, htmlsafe, report

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # tqdm.auto's ipywidgets warning
    from insights_kit.readers import load

alt.renderers.enable("svg")
t_since, t_until = report.parse_time(since), report.parse_time(until)
events = load(report.split_sources(source), since=t_since, until=t_until, progress=False).events
home = home_region or detect.choose_home_region(events)
analysed = detect.analysis_events(events, home_region=home)
if not region:
    region = analysed.group_by("analysisRegion").len().sort(["len", "analysisRegion"], descending=[True, False]).collect()["analysisRegion"][0]
chosen = analysed.filter(detect.in_analysis_region(htmlsafe.check_region(region), home_region=home))
if ip:
    chosen = chosen.filter(pl.col("sourceIpAddress") == ip)
if api:
    service, _, name = api.rpartition("/")
    chosen = chosen.filter(pl.col("eventName") == name)
    if service:
        chosen = chosen.filter(pl.col("serviceName") == service)
picked = chosen.sort(["eventTime", "eventId"]).collect()
display(HTML(f"<p>{picked.height} events in {htmlsafe.esc(region)}"
             f"{' from ' + htmlsafe.esc(ip) if ip else ''}{' of ' + htmlsafe.esc(api) if api else ''}.</p>"))

# %% [markdown]
# ## Calls over time, by API (interactive)

# %%
calls, bucket = charts.api_calls(picked.lazy(), since=t_since, until=t_until)
display(HTML(charts.interactive_html(charts.explore_chart(calls, title=f"Calls per {bucket} min in {region}"))))

# %% [markdown]
# ## Source addresses and principals

# %%
top_ips = picked.group_by("sourceIpAddress").agg(pl.len().alias("calls"), pl.col("eventName").n_unique().alias("apis"),
                                                 pl.col("eventTime").min().alias("first"), pl.col("eventTime").max().alias("last"))
display(HTML(htmlsafe.table_html(top_ips.sort(["calls", "sourceIpAddress"], descending=[True, False]), max_rows=20)))
top_principals = picked.group_by("principalId", "userName").agg(pl.len().alias("calls")).sort(["calls", "principalId"], descending=[True, False])
display(HTML(htmlsafe.table_html(top_principals, max_rows=20)))

# %% [markdown]
# ## The management events (first 50)

# %%
display(HTML(htmlsafe.table_html(picked.select([c for c in report.RELATED_COLUMNS if c in picked.columns]), max_rows=50)))
