"""The ``report`` command and the helpers the report notebook calls.

``run_report`` detects once (``detect.run_detect`` into ``DIR/insights``), then executes
``notebooks/insights_report.ipynb`` with papermill once per region in a process pool, keeps
each executed notebook, converts it to HTML with the code hidden, and writes the indexes::

    DIR/insights/...                          the Insights store (detect --out)
    DIR/index.html                            every report window, the latest first
    DIR/<window>/index.html                   the console: search, filter and drill down (insights_kit.console)
    DIR/<window>/console/...                  its Vega bundle and one detail file per incident
    DIR/<window>/<region>/report.ipynb        the executed notebook
    DIR/<window>/<region>/report.html         the same, code hidden, no network needed
    DIR/<window>/<region>/*.png, *.svg        its charts
    DIR/<window>/<region>/kernel.log          the kernel's own log (kept off the terminal)

Each worker process starts one Jupyter kernel and reuses it, reset, for every region it runs
(:mod:`insights_kit.warm_kernel`); ``INSIGHTS_KIT_NOTEBOOK_ENGINE=nbclient`` gives each region
a fresh kernel instead (papermill's default engine), e.g. to rule the reuse out.

``<window>`` is ``<since>_<until>`` in compact UTC (``open`` when unbounded), so re-running a
window replaces it. A region that fails keeps its row in the index with the error's last line.

What the notebook shows and how is :mod:`insights_kit.region_page`. Every value put into HTML
goes through :mod:`insights_kit.htmlsafe`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime, timezone
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Iterator, Sequence

import polars as pl

from insights_kit.htmlsafe import assert_offline, check_region, check_window, esc, window_name
from insights_kit.objects import is_remote
from insights_kit.regions import format_home, summary_home
from insights_kit.schema import INSIGHT_TYPES

NOTEBOOK = Path("notebooks") / "insights_report.ipynb"
#: What a report worker's kernel imports before its first region (the notebook's heavy imports).
WARM_UP_CODE = "import altair, polars\nfrom insights_kit import charts, region_page"


# --------------------------------------------------------------------------- paths and parameters


def repo_root() -> Path:
    """The insights-kit checkout: the first parent of the cwd with ``pyproject.toml`` and
    ``insights_kit/``, else the folder above the package (notebooks run from the repo root
    or from ``notebooks/`` alike)."""
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / "pyproject.toml").is_file() and (folder / "insights_kit").is_dir():
            return folder
    return Path(__file__).resolve().parents[1]


def resolve(path: str | Path) -> Path:
    """An absolute path; relative paths are relative to the repo root, not the cwd.

    ``s3://`` and ``oss://`` URLs come back as they are (a str)."""
    if is_remote(path):
        return path  # type: ignore[return-value]
    p = Path(path).expanduser()
    return p if p.is_absolute() else repo_root() / p


def split_sources(source: str | Sequence[str | Path]) -> list[Path]:
    """``a;b`` (the notebook parameter) or a list, each resolved with :func:`resolve`."""
    items = source.split(";") if isinstance(source, str) else [str(s) for s in source]
    return [resolve(s.strip()) for s in items if s.strip()]


def parse_time(text: str | datetime | None) -> datetime | None:
    """ISO text (``Z`` or offset; naive = UTC) or a datetime; empty = None."""
    if text is None or text == "":
        return None
    ts = text if isinstance(text, datetime) else datetime.fromisoformat(str(text).strip().replace("Z", "+00:00"))
    return ts.replace(tzinfo=timezone.utc) if ts.tzinfo is None else ts.astimezone(timezone.utc)


def _iso(ts: datetime | None) -> str:
    return "" if ts is None else ts.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _in_window(insights: pl.DataFrame, since: datetime | None, until: datetime | None) -> pl.DataFrame:
    """Insights events of incidents whose Start lies in [since, until) (their End included)."""
    starts = insights.filter(pl.col("state") == "Start")
    if since is not None:
        starts = starts.filter(pl.col("eventTime") >= since)
    if until is not None:
        starts = starts.filter(pl.col("eventTime") < until)
    return insights.filter(pl.col("sharedEventId").is_in(starts["sharedEventId"].implode()))


# --------------------------------------------------------------------------- HTML conversion

_OFFLINE_TEMPLATE = """\
{%- extends 'lab/index.html.j2' -%}
{%- block html_head_js -%}{%- endblock html_head_js -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
{%- block extra_css -%}
<style>
/* printed tables (the summary by day and type) keep their columns: scroll, never wrap */
div.jp-OutputArea-output pre { white-space: pre; word-break: normal; word-wrap: normal; overflow-x: auto; }
</style>
{%- endblock extra_css -%}
"""


def notebook_to_html(notebook: str | Path, target: str | Path, *, title: str) -> Path:
    """Executed notebook → self-contained HTML, code hidden, nothing loaded from a CDN.

    The lab template's require.js, MathJax, mermaid and widget scripts come from CDNs, so an
    in-memory template that extends it blanks those blocks; the result is checked with
    :func:`~insights_kit.htmlsafe.assert_offline`.
    """
    import nbformat
    from jinja2 import DictLoader
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(
        template_name="lab",
        extra_loaders=[DictLoader({"ik_offline.html.j2": _OFFLINE_TEMPLATE})],
        template_file="ik_offline.html.j2",
        exclude_input=True,
        exclude_input_prompt=True,
        exclude_output_prompt=True,
    )
    nb = nbformat.read(str(notebook), as_version=4)
    body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": title}})
    assert_offline(body, name=str(target))
    target = Path(target)
    _write_text(target, body)
    return target


def _write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


# --------------------------------------------------------------------------- running the report


def kernel_name() -> str:
    """The kernel to run notebooks with: ``insights-kit`` when it is this interpreter, else ``python3``.

    ``python3`` is jupyter_client's native kernel, which it starts with ``sys.executable``.
    """
    try:
        from jupyter_client.kernelspec import KernelSpecManager

        spec = KernelSpecManager().get_all_specs().get("insights-kit")
    except Exception:  # no jupyter data dirs at all: the native kernel still works
        spec = None
    if spec:
        argv0 = (spec.get("spec") or {}).get("argv", [""])[0]
        if argv0 in ("python", "python3") or Path(argv0).resolve() == Path(sys.executable).resolve():
            return "insights-kit"
    return "python3"


def notebook_path() -> Path:
    """The report notebook (``notebooks/insights_report.ipynb`` of the checkout)."""
    return repo_root() / NOTEBOOK


def _kernel_env() -> None:
    # Kernels inherit the environment: make the package importable even when not installed.
    pkg_parent = str(Path(__file__).resolve().parents[1])
    current = os.environ.get("PYTHONPATH", "")
    if pkg_parent not in current.split(os.pathsep):
        os.environ["PYTHONPATH"] = pkg_parent + (os.pathsep + current if current else "")


def _last_line(exc: BaseException) -> str:
    ename = getattr(exc, "ename", None) or type(exc).__name__
    evalue = getattr(exc, "evalue", None)
    text = f"{ename}: {evalue if evalue is not None else exc}".strip()
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ename


@contextlib.contextmanager
def _stderr_to(path: Path) -> Iterator[None]:
    """Point file descriptor 2 (inherited by child processes) at ``path`` for the block."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(path, "wb") as log:
            os.dup2(log.fileno(), 2)
            yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def _execute_region(job: dict[str, Any]) -> dict[str, Any]:
    """Worker: run the notebook for one region, then convert it; never raises."""
    import papermill as pm

    from insights_kit.warm_kernel import ENGINE

    engine = notebook_engine()
    _kernel_env()
    region_dir = Path(job["region_dir"])
    region_dir.mkdir(parents=True, exist_ok=True)
    output = region_dir / "report.ipynb"
    result: dict[str, Any] = {"region": job["parameters"]["region"], "notebook": str(output), "html": None}
    try:
        # The kernel inherits this worker's stderr and logs its own start-up and shutdown there
        # ("running over TCP without encryption", "KeyboardInterrupt caught in kernel"); that
        # goes to the region's kernel.log rather than alarming the user's terminal (the warm
        # engine's reused kernel is moved to each region's log in turn).
        with _stderr_to(region_dir / "kernel.log"):
            pm.execute_notebook(
                job["notebook"], str(output), parameters=job["parameters"], kernel_name=job["kernel"],
                cwd=str(region_dir), progress_bar=False, log_output=False, request_save_on_cell_execute=False,
                engine_name=engine, **({"kernel_log": str(region_dir / "kernel.log")} if engine == ENGINE else {}),
                # papermill's 60 s default for a kernel to start is too short on a busy shared
                # machine with two kernels starting side by side (a region failed in CI that way).
                start_timeout=300,
            )
        result["status"] = "ok"
    except Exception as exc:  # a failing region must not lose the others
        result.update(status="failed", error=_last_line(exc))
    if output.exists():
        try:
            _make_reproducible(output, staging=job.get("staging", ""), final=job.get("final", ""))
            result["html"] = str(notebook_to_html(output, region_dir / "report.html",
                                                  title=f"insights-kit {job['parameters']['region']}"))
        except Exception as exc:
            if result["status"] == "ok":
                result.update(status="failed", error=_last_line(exc))
    result["charts"] = sorted(p.name for p in region_dir.glob("*.svg"))
    return result


_RUN_TIMES = ("start_time", "end_time", "duration", "output_path")


def _make_reproducible(notebook: Path, *, staging: str = "", final: str = "") -> None:
    """Same input, same saved notebook: drop papermill's clock times and staging path, fix its random cell id.

    ``staging`` (the run's temporary folder, named by its pid) is replaced by ``final``, where
    the window is moved at the end, in the injected parameters and their record in the metadata.
    """
    import nbformat

    nb = nbformat.read(str(notebook), as_version=4)
    for meta in [nb.metadata.get("papermill", {})] + [c.metadata.get("papermill", {}) for c in nb.cells]:
        for key in _RUN_TIMES:
            meta.pop(key, None)
    moved = (lambda text: text.replace(staging, final)) if staging else (lambda text: text)  # noqa: E731
    parameters = nb.metadata.get("papermill", {}).get("parameters", {})
    for name, value in parameters.items():
        if isinstance(value, str):
            parameters[name] = moved(value)
    for cell in nb.cells:
        cell.metadata.pop("execution", None)  # nbclient's timestamps
        if "injected-parameters" in cell.metadata.get("tags", []):
            cell.id = "injected-parameters"
            cell.source = moved(cell.source)
    _write_text(notebook, nbformat.writes(nb) + "\n")


def run_report(
    sources: Sequence[str | Path],
    out: str | Path,
    *,
    regions: str | Sequence[str] = "all",
    since: datetime | None = None,
    until: datetime | None = None,
    jobs: int = 2,
    config: Any = None,
    home_region: str | None = None,
    state: str | Path | None = None,
    notify_url: str | None = None,
    notify_format: str | None = None,
    executor: str = "local",
    scheduler: str | None = None,
) -> dict[str, Any]:
    """Detect once, then report every region in parallel; see the module docstring for the layout.

    ``state`` is detect's ``--state`` folder: a scheduled window continues from it (no new
    learning period, incidents open at the previous window's end are closed, late deliveries
    count), exactly as ``detect --state`` does.

    Returns
    -------
    dict
        ``index`` (``DIR/index.html``), ``window``, ``window_index``, ``store``, ``summary``
        (detect's), ``regions`` (region → ``status`` ok/failed, ``error``, ``html``,
        ``notebook``, ``charts``, ``insights``) and ``failed`` (sorted region names).
    """
    out = Path(out).resolve()
    # Paths given to run_report are the caller's, so relative ones are relative to its cwd
    # (resolve() would take them from the repo root, which is meant for notebook parameters).
    sources = [_absolute(s) for s in sources]
    if isinstance(config, (str, Path)) and str(config):
        config = _absolute(config)
    window = window_name(since, until)
    store_dir = out / "insights"
    # The notebook workers start (spawn, not fork: Polars' thread pool runs here) and warm
    # their kernels while detect runs; detect is mostly one busy thread.
    workers = max(1, int(jobs))
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"),
                               initializer=_warm_worker, initargs=(kernel_name(),))
    try:
        for _ in range(workers):
            pool.submit(int)  # one spawned worker per job (workers start on demand)
        return _detect_and_report(pool, sources, out, window, store_dir, since=since, until=until,
                                  home_region=home_region, config=config, state=state, notify_url=notify_url,
                                  notify_format=notify_format, executor=executor, scheduler=scheduler,
                                  regions=regions)
    finally:
        pool.shutdown(cancel_futures=True)


def notebook_engine() -> str:
    """papermill's engine for the region notebooks: the warm one unless ``INSIGHTS_KIT_NOTEBOOK_ENGINE`` names another."""
    from insights_kit.warm_kernel import ENGINE

    return os.environ.get("INSIGHTS_KIT_NOTEBOOK_ENGINE") or ENGINE


def _warm_worker(kernel: str) -> None:
    from insights_kit.warm_kernel import ENGINE, warm_up

    _kernel_env()
    if notebook_engine() == ENGINE:
        warm_up(kernel, WARM_UP_CODE)


def _detect_and_report(pool: ProcessPoolExecutor, sources: list, out: Path, window: str, store_dir: Path, *,
                       since: datetime | None, until: datetime | None, home_region: str | None, config: Any,
                       state: str | Path | None, notify_url: str | None, notify_format: str | None,
                       executor: str, scheduler: str | None, regions: str | Sequence[str]) -> dict[str, Any]:
    from insights_kit.detect import run_detect

    summary = run_detect([str(resolve(s)) for s in sources], store_dir, since=since, until=until,
                         home_region=home_region, config=config, state=None if state is None else _absolute(state),
                         notify_url=notify_url, notify_format=notify_format, executor=executor, scheduler=scheduler)
    known = sorted(summary.get("regions", {}))
    wanted = known if regions == "all" else list(dict.fromkeys(regions))
    _check_regions_in_data(wanted, known)

    staging = out / f".{window}.tmp-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        return _report_into(pool, staging, out, window, summary, wanted, sources=sources, store_dir=store_dir,
                            since=since, until=until, config=config, home_region=home_region)
    except BaseException:
        # No half-written window: a failed run (disk full, interrupted) leaves no staging folder.
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _absolute(path: str | Path) -> Path:
    """``path`` made absolute against the current working directory (URLs as they are)."""
    if is_remote(path):
        return path  # type: ignore[return-value]
    return Path(os.path.abspath(Path(path).expanduser()))


def _check_regions_in_data(wanted: Sequence[str], known: Sequence[str]) -> None:
    """Well-formed regions that the data does not have are an input error, not an empty "ok".

    Malformed names are left to :func:`check_region`, which marks them failed in the index.
    """
    from insights_kit.readers import InputError

    absent = []
    for region in wanted:
        try:
            check_region(region)
        except ValueError:
            continue
        if region not in known:
            absent.append(region)
    if absent:
        raise InputError(f"region(s) not in the data: {', '.join(absent)} "
                         f"(regions found: {', '.join(known) or 'none'})")


def _report_into(pool: ProcessPoolExecutor, staging: Path, out: Path, window: str, summary: dict[str, Any],
                 wanted: Sequence[str], *, sources: Sequence[Path], store_dir: Path, since: datetime | None,
                 until: datetime | None, config: Any, home_region: str | None) -> dict[str, Any]:
    """Run the region notebooks in ``staging``, then move it to ``out/<window>``."""
    from insights_kit.config import Config, to_toml

    config_path = ""
    if isinstance(config, Config):
        config_path = str(staging / "config.toml")
        _write_text(Path(config_path), to_toml(config))
    elif config:
        config_path = str(resolve(config))

    results: dict[str, dict[str, Any]] = {}
    job_list = []
    for region in wanted:
        try:
            check_region(region)
        except ValueError as exc:
            results[str(region)] = {"region": str(region), "status": "failed", "error": str(exc), "html": None,
                                    "notebook": None, "charts": []}
            continue
        job_list.append({
            "notebook": str(notebook_path()),
            "kernel": kernel_name(),
            "region_dir": str(staging / region),
            "staging": str(staging),
            "final": str(out / window),
            "parameters": {
                "source": ";".join(str(resolve(s)) for s in sources),
                "store": str(store_dir),
                "region": region,
                "since": _iso(since),
                "until": _iso(until),
                "out_dir": str(staging / region),
                "config": config_path,
                "home_region": format_home(summary_home(summary) or home_region),
            },
        })
    if job_list:
        futures = {pool.submit(_execute_region, job): job["parameters"]["region"] for job in job_list}
        for future, region in futures.items():
            try:
                results[region] = future.result()
            except Exception as exc:  # the worker process itself died
                results[region] = {"region": region, "status": "failed", "error": _last_line(exc),
                                   "html": None, "notebook": None, "charts": []}

    for region, res in results.items():
        res["insights"] = dict((summary.get("regions", {}).get(region) or {}).get("insights") or {})
        res["events"] = (summary.get("regions", {}).get(region) or {}).get("events")
        res["learning"] = dict((summary.get("regions", {}).get(region) or {}).get("learning") or {})
    data_since, data_until = data_span(summary)
    _write_console(staging, window, results, sources=sources, store_dir=store_dir, since=since or data_since,
                   until=until or data_until, home_region=summary_home(summary) or home_region, config=config)

    final = out / window
    _replace_dir(staging, final)
    for res in results.values():  # paths as they are after the move
        for key in ("html", "notebook"):
            if res.get(key):
                res[key] = str(final / Path(res[key]).relative_to(staging))
    _write_text(out / "index.html", root_index_html(out, latest=window, results=results))
    failed = sorted(r for r, res in results.items() if res["status"] != "ok")
    return {
        "index": str(out / "index.html"),
        "window": window,
        "window_index": str(final / "index.html"),
        "store": str(store_dir),
        "summary": summary,
        "regions": dict(sorted(results.items())),
        "failed": failed,
    }


def _write_console(staging: Path, window: str, results: dict[str, dict[str, Any]], *, sources: Sequence[Path],
                   store_dir: Path, since: datetime | None, until: datetime | None, home_region: str | None,
                   config: Any) -> dict[str, Any]:
    """The window's ``index.html``: the console over the window's incidents (:mod:`insights_kit.console`)."""
    import warnings

    from insights_kit import store as st
    from insights_kit.config import Config, load_config
    from insights_kit.console import write_console

    with warnings.catch_warnings():  # tqdm.auto's ipywidgets warning
        warnings.simplefilter("ignore")
        from insights_kit.readers import load

    cfg = config if isinstance(config, Config) else load_config(str(resolve(config)) if config else None)
    insights = _in_window(st.read_events(store_dir), since, until)
    events = load([str(resolve(s)) for s in sources], since=since, until=until, progress=False).events
    regions = []
    for region in sorted(results):
        res = results[region]
        ok = res.get("status") == "ok" and _safe_region(region) is not None
        regions.append({
            "region": region, "status": res.get("status"), "error": res.get("error"), "events": res.get("events"),
            "learning": learning_note(res.get("learning") or {}) if ok else "",
            "page": f"{region}/report.html" if ok and res.get("html") else None,
            "insights": {t: int((res.get("insights") or {}).get(t, 0)) for t in INSIGHT_TYPES},
        })
    return write_console(staging, insights=insights, events=events, window=window, since=since, until=until,
                         regions=regions, home_region=home_region, config=cfg)


def _replace_dir(new: Path, target: Path) -> None:
    """Put ``new`` at ``target``, replacing a previous run of the same window."""
    if target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.replace(target, old)
        os.replace(new, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(new, target)


# --------------------------------------------------------------------------- index pages

_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2rem;color:#222}
table{border-collapse:collapse}th,td{border:1px solid #ccc;padding:.3rem .6rem;text-align:left}
th{background:#f3f3f3}td.num{text-align:right}tr.failed td{background:#fdecea}.err{color:#a40000}
#regions td:first-child{white-space:nowrap}
"""

def _page(title: str, body: str) -> str:
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{esc(title)}</title><style>{_STYLE}</style></head><body>{body}</body></html>\n"
    )


def data_span(summary: dict[str, Any]) -> tuple[datetime | None, datetime | None]:
    """First and last minute of the data detect analysed (its summary), for an open window."""
    entries = [e for r in (summary.get("regions") or {}).values() for e in (r.get("learning") or {}).values()]
    starts = [parse_time(e["dataStart"]) for e in entries if e.get("dataStart")]
    ends = [parse_time(e["dataEnd"]) for e in entries if e.get("dataEnd")]
    return (min(starts) if starts else None, max(ends) if ends else None)


def learning_note(learning: dict[str, Any]) -> str:
    """``"learning until ..."`` for a region whose units had nothing but learning data, else ``""``."""
    until = sorted(e["learningUntil"] for e in learning.values() if e.get("learningOnly") and e.get("learningUntil"))
    return f"learning until {until[-1]} (no rate or IP insight before)" if until else ""


def regions_table(results: dict[str, dict[str, Any]], *, prefix: str = "") -> str:
    """One row per region with its insight counts by type; links are relative to ``prefix``."""
    from insights_kit.console.page import SHORT_TYPE_NAMES

    head = "".join(
        f'<th title="{esc(t)}">{esc(SHORT_TYPE_NAMES.get(t, t))}</th>'
        for t in ("region", "status", "events", *INSIGHT_TYPES, "total", "files")
    )
    rows = []
    for region in sorted(results):
        res = results[region]
        counts = [int((res.get("insights") or {}).get(t, 0)) for t in INSIGHT_TYPES]
        safe = _safe_region(region)
        link = f'<a href="{esc(prefix)}{esc(safe)}/report.html">{esc(region)}</a>' if safe else esc(region)
        if res.get("status") == "ok" and safe:
            note = learning_note(res.get("learning") or {})
            status, name = ("ok" + (f"; {esc(note)}" if note else "")), link
        else:
            status = f'<span class="err">failed: {esc(res.get("error") or "unknown error")}</span>'
            name = link if safe and res.get("html") else esc(region)
        files = f'<a href="{esc(prefix)}{esc(safe)}/report.ipynb">notebook</a>' if safe and res.get("notebook") else ""
        rows.append(
            f'<tr class="{"ok" if res.get("status") == "ok" else "failed"}"><td>{name}</td><td>{status}</td>'
            f'<td class="num">{esc(res.get("events") if res.get("events") is not None else "")}</td>'
            + "".join(f'<td class="num">{c}</td>' for c in counts)
            + f'<td class="num">{sum(counts)}</td><td>{files}</td></tr>'
        )
    return (
        f'<table id="regions"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'
        "<p>Counts are Insights incidents (Start events) by type.</p>"
    )


def _safe_region(region: str) -> str | None:
    try:
        return check_region(region)
    except ValueError:
        return None


def root_index_html(out: Path, *, latest: str, results: dict[str, dict[str, Any]] | None = None) -> str:
    """``DIR/index.html``: the latest window's regions with their counts, then every window."""
    check_window(latest)
    windows = sorted((p.name for p in out.iterdir() if p.is_dir() and _is_window(p.name)), reverse=True)
    items = "".join(f'<li><a href="{esc(w)}/index.html">{esc(w)}</a></li>' for w in windows)
    body = (
        "<h1>ActionTrail Insights reports</h1>"
        f'<p>Latest: <a id="latest" href="{esc(latest)}/index.html">{esc(latest)}</a></p>'
        + (regions_table(results, prefix=f"{latest}/") if results else "")
        + f"<h2>All windows</h2><ul>{items}</ul>"
    )
    return _page("insights-kit reports", body)


def _is_window(name: str) -> bool:
    try:
        check_window(name)
        return True
    except ValueError:
        return False
