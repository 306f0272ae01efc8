"""One Jupyter kernel per process, reused for every notebook it runs: papermill's ``warm`` engine.

Starting a kernel and importing Polars, Altair and the package in it cost seconds per
notebook; a report of N regions on J worker processes pays that J times instead of N.

Before each notebook the kernel is reset, so a notebook sees what a fresh kernel would show
it: the user namespace emptied and a new history session begun, so the execution counter is
back at 1 (the saved notebook does not depend on which notebooks the kernel ran before), the
working directory set to papermill's ``cwd`` and the kernel's own stderr (its log) moved to
``kernel_log``.
Imported modules stay imported: that is the saving. A kernel that died is replaced; the
kernels are shut down when the process exits.

Examples
--------
>>> import papermill as pm
>>> pm.execute_notebook("in.ipynb", "out.ipynb", engine_name=ENGINE,
...                     kernel_log="kernel.log")  # doctest: +SKIP
"""

from __future__ import annotations

import atexit
import os
from typing import Any

from jupyter_client.manager import AsyncKernelManager
from jupyter_core.utils import run_sync
from papermill.clientwrap import PapermillNotebookClient
from papermill.engines import NBClientEngine, papermill_engines

ENGINE = "insights-kit-warm"

_kernels: dict[str, AsyncKernelManager] = {}


class _ResettingClient(PapermillNotebookClient):
    """Papermill's client, which first runs ``reset_code`` silently in the (reused) kernel."""

    reset_code = ""

    def papermill_execute_cells(self) -> None:
        reply = self.wait_for_reply(self.kc.execute(self.reset_code, silent=True, store_history=False))
        if not reply or reply["content"].get("status") != "ok":
            content = (reply or {}).get("content", {})
            raise RuntimeError(f"could not reset the kernel: {content.get('ename')}: {content.get('evalue')}")
        super().papermill_execute_cells()


def _reset_code(cwd: str, kernel_log: str | None) -> str:
    # chdir first: a reset reads the working directory, which may be a deleted warm-up folder.
    # reset(new_session=True): names, caches and a new history session whose lines start at 1
    # (a counter set back by hand collides with the history database).
    lines = ["import os as _ik_os", f"_ik_os.chdir({cwd!r})", "get_ipython().reset(new_session=True)",
             "import os as _ik_os"]
    if kernel_log:
        lines += [
            f"_ik_fd = _ik_os.open({kernel_log!r}, _ik_os.O_WRONLY | _ik_os.O_CREAT | _ik_os.O_APPEND, 0o644)",
            "_ik_os.dup2(_ik_fd, 2)",
            "_ik_os.close(_ik_fd)",
            "del _ik_fd",
        ]
    lines += ["del _ik_os"]
    return "\n".join(lines)


def _kernel(kernel_name: str) -> AsyncKernelManager:
    km = _kernels.get(kernel_name)
    if km is not None and km.has_kernel and run_sync(km.is_alive)():
        return km
    # Not started here: nbclient starts it (with its start-up timeout) when it has no kernel.
    km = AsyncKernelManager(kernel_name=kernel_name)
    _kernels[kernel_name] = km
    return km


def shutdown() -> None:
    """Shut down every kernel this process started (also run at exit)."""
    while _kernels:
        _, km = _kernels.popitem()
        try:
            if km.has_kernel:
                run_sync(km.shutdown_kernel)(now=True)
        except Exception:  # noqa: BLE001 - exiting anyway; a dead kernel is already down
            pass


atexit.register(shutdown)


def warm_up(kernel_name: str, code: str) -> None:
    """Start this process's kernel now and run ``code`` in it (imports), e.g. while the parent works.

    Quiet and best-effort: a kernel that fails here is started again by the first notebook,
    which then logs why to its own ``kernel_log``.
    """
    import tempfile

    import nbformat
    import papermill as pm

    with tempfile.TemporaryDirectory(prefix="ik-warm-") as tmp:
        nb = nbformat.v4.new_notebook()
        nb.metadata["kernelspec"] = {"name": kernel_name, "language": "python", "display_name": kernel_name}
        nb.cells = [nbformat.v4.new_code_cell(code)]
        nbformat.write(nb, f"{tmp}/warm.ipynb")
        saved = os.dup(2)
        try:
            with open(os.devnull, "wb") as null:
                os.dup2(null.fileno(), 2)  # the kernel's start-up chatter
                pm.execute_notebook(f"{tmp}/warm.ipynb", f"{tmp}/out.ipynb", kernel_name=kernel_name, cwd=tmp,
                                    progress_bar=False, engine_name=ENGINE, start_timeout=300)
        except Exception:  # noqa: BLE001 - see the docstring
            pass
        finally:
            os.dup2(saved, 2)
            os.close(saved)


class WarmEngine(NBClientEngine):
    """:class:`papermill.engines.NBClientEngine` on this process's reused kernel."""

    @classmethod
    def execute_managed_notebook(cls, nb_man, kernel_name, log_output=False, stdout_file=None, stderr_file=None,
                                 start_timeout=60, execution_timeout=None, **kwargs: Any):
        kernel_log = kwargs.pop("kernel_log", None)
        kwargs.pop("input_path", None)
        kwargs.pop("startup_timeout", None)
        timeout = execution_timeout or kwargs.pop("timeout", None)
        client = _ResettingClient(nb_man, km=_kernel(kernel_name), timeout=timeout, startup_timeout=start_timeout,
                                  kernel_name=kernel_name, log_output=log_output, stdout_file=stdout_file,
                                  stderr_file=stderr_file, **kwargs)
        # papermill runs the engine inside its `cwd`: the reused kernel must move there too.
        client.reset_code = _reset_code(os.getcwd(), kernel_log)
        try:
            return client.execute()
        finally:
            if client.kc is not None:
                client.kc.stop_channels()


papermill_engines.register(ENGINE, WarmEngine)
