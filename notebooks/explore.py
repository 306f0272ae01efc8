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
#
# With `store` (an Insights store, `insights-kit detect --out`), the region's incidents are
# listed too, and `incident` (a sharedEventId from that list) narrows the time range to the
# incident ± 2 h, the region to its region and, for an IpInsight, the address to its address.

# %% tags=["parameters"]
source: str = "data/sample"  # management events: file or folder path(s), ';'-separated (relative: repo root)
region: str = ""  # analysis region; empty: the region with the most events
ip: str = ""  # only calls from this source address; empty: every address
api: str = ""  # only this API, as eventName or serviceName/eventName; empty: every API
since: str = ""  # ISO 8601 UTC start; empty: start of data
until: str = ""  # ISO 8601 UTC end (exclusive); empty: end of data
home_region: str = ""  # region that analyses global events; empty: the store's, else the busiest region
store: str = ""  # Insights store folder (relative: repo root); empty: no incidents shown
incident: str = ""  # sharedEventId of an incident in the store: its region, address and span ± 2 h

# %%
import warnings

import altair as alt
import polars as pl
from IPython.display import HTML, display

from insights_kit import charts, detect, htmlsafe, region_page, report
from insights_kit import store as ik_store
from insights_kit.console import data as console_data
from insights_kit.console.jupyter import focus

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # tqdm.auto's ipywidgets warning
    from insights_kit.readers import load

alt.renderers.enable("svg")
t_since, t_until = report.parse_time(since), report.parse_time(until)
incidents = console_data.incident_table(ik_store.read_events(report.resolve(store))) if store else None
if incidents is not None and incident:
    spot = focus(incidents, incident)
    region, ip = region or spot["region"], ip or spot["ip"] or ""
    t_since, t_until = t_since or spot["since"], t_until or spot["until"]
    display(HTML(f"<p>Incident {htmlsafe.esc(spot['type'])} on {htmlsafe.esc(spot['object'])}: "
                 f"{htmlsafe.esc(console_data.iso(t_since))} to {htmlsafe.esc(console_data.iso(t_until))} "
                 "(the incident ± 2 h).</p>"))
events = load(report.split_sources(source), since=t_since, until=t_until, progress=False).events
home = home_region or (ik_store.home_region(report.resolve(store)) if store else None) or detect.choose_home_region(events)
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
# ## Incidents in the store for this region
#
# Only with `store`; pass one of these sharedEventIds as `incident` to zoom on it.

# %%
if incidents is None:
    print("No store given (parameter `store`).")
else:
    shown = console_data.search(incidents, regions=[region], since=t_since, until=t_until)
    display(HTML(htmlsafe.table_html(shown.select("id", "type", "object", "start", "end", "insightCount", "score", "ratio"),
                                     max_rows=50, caption=f"{shown.height} incident(s) in {region}")))

# %% [markdown]
# ## Calls over time, by API (interactive)

# %%
span = picked.select(pl.col("eventTime").min().alias("lo"), pl.col("eventTime").max().alias("hi"))
lo, hi = t_since or span["lo"][0], t_until or span["hi"][0]
calls, bucket = charts.api_calls(picked.lazy(), since=t_since, until=t_until, base_minutes=charts.explore_bucket_minutes(lo, hi))
display(charts.InteractiveChart(charts.explore_chart(calls, title=f"Calls per {bucket} min in {region}", bucket_minutes=bucket)))

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
display(HTML(htmlsafe.table_html(picked.select([c for c in region_page.RELATED_COLUMNS if c in picked.columns]), max_rows=50)))
