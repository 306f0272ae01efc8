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
# # Insights console
#
# ActionTrail's Insights console in JupyterLab: search the incidents of an Insights store by IP
# address, insight type or eventId/sharedEventId, filter by region, type and time range, and open
# one to see its trend (click an API to highlight its calls), its attributions, its ActionTrail
# events and the original Start and End events. Charts are drawn offline (SVG by vl-convert).
#
# Without `make demo` (a fresh clone), the default paths do not exist: the notebook then detects
# Insights on the shipped sample into a temporary folder and says so.

# %% tags=["parameters"]
store: str = "out/demo/report/insights"  # Insights store folder (insights-kit detect --out; relative: repo root)
source: str = "out/demo/lake"  # management events behind it: file or folder path(s), ';'-separated (relative: repo root)
search: str = ""  # search text: IP address, insight type, eventId or sharedEventId (substring, any case)
insight_type: str = ""  # only this insight type, e.g. IpInsight; empty: every type
region: str = ""  # only this region, e.g. cn-hangzhou; empty: every region
since: str = ""  # ISO 8601 UTC start of the range; empty: 30 days before the end of data
until: str = ""  # ISO 8601 UTC end of the range; empty: the end of data
incident: str = ""  # sharedEventId of the incident to open; empty: the first match
home_region: str = ""  # region that analyses global events; empty: the store's, else the busiest region

# %%
import altair as alt
from IPython.display import HTML, display

from insights_kit import report
from insights_kit.console.jupyter import Console, open_store

alt.renderers.enable("svg")  # a chart displayed in a cell renders offline too (vl-convert)
store_dir, sources, note = open_store(store, source)
if note:
    print(note)
console = Console(store_dir, sources, home_region=home_region or None)
ui = console.widget(text=search, insight_type=insight_type, region=region, since=report.parse_time(since),
                    until=report.parse_time(until), incident=incident)
ui

# %% [markdown]
# ## The same search, statically
#
# For runs without a widget front end (papermill, an HTML export): the incidents the console
# lists, their counts, and the chosen incident (`incident`, else the first match).

# %%
hits = ui.hits()
display(HTML(console.counts_html(hits)))
display(HTML(console.list_html(hits)))

# %%
chosen = incident or (hits["id"][0] if hits.height else "")
if chosen:
    console.show(chosen)
else:
    print("No incident matches the search.")
