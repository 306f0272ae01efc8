"""An organisation's trail: several simulated accounts in ActionTrail's multi-account layout.

A resource-directory (multi-account) trail delivers every member's events to one bucket::

    AliyunLogs/Actiontrail/<rd_id>/<account>/<region>/<YYYY>/<MM>/<DD>/<file>.gz

Each account is :func:`insights_kit.simulate.simulate` with its own seed (``seed + i``), so
each has its own account id, identities, addresses and incidents; ``labels.json`` lists
every account's labels under ``accounts``.

Examples
--------
>>> r = simulate_organisation("/tmp/org", accounts=3, days=5, seed=1, scale=0.01)  # doctest: +SKIP
>>> len(r["accounts"])                                                             # doctest: +SKIP
3
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from insights_kit.simulate import simulate

#: The resource directory id of simulated organisations (``rd-`` and 6 characters, as ActionTrail shows them).
DEFAULT_RD_ID = "rd-sim001"


def simulate_organisation(
    out: str | Path, *, accounts: int, rd_id: str = DEFAULT_RD_ID, seed: int = 1, **options: Any
) -> dict[str, Any]:
    """Simulate ``accounts`` accounts into one multi-account delivery tree under ``out``.

    ``options`` are :func:`~insights_kit.simulate.simulate`'s (``days``, ``scale``, ...).
    Returns the labels written to ``out/labels.json``.
    """
    if accounts < 1:
        raise ValueError("accounts must be at least 1")
    out = Path(out)
    root = out / "AliyunLogs" / "Actiontrail" / rd_id
    if root.exists():
        shutil.rmtree(root)
    staging = out / ".simulate-accounts"
    shutil.rmtree(staging, ignore_errors=True)
    members = []
    for i in range(accounts):
        folder = staging / str(i)
        result = simulate(folder, seed=seed + i, **options)
        labels = json.loads(result.labels_path.read_text())
        target = root / labels["account"]
        target.parent.mkdir(parents=True, exist_ok=True)
        (folder / "AliyunLogs" / "Actiontrail").rename(target)  # <region>/YYYY/MM/DD/... under the account
        members.append(labels)
    shutil.rmtree(staging)
    labels = {
        "generator": "insights-kit simulate --accounts",
        "rd_id": rd_id,
        "seed": seed,
        "events": sum(m["events"] for m in members),
        "records": sum(m["records"] for m in members),
        "files": sum(m["files"] for m in members),
        "accounts": members,
    }
    tmp = out / ".labels.json.tmp"
    tmp.write_text(json.dumps(labels, indent=1) + "\n")
    tmp.replace(out / "labels.json")
    return labels
