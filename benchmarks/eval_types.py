"""Detection quality per insight type on simulated accounts: recall, precision, false Starts.

Simulates each seed, runs ``detect`` with the defaults and scores the Starts against the labels
(:mod:`insights_kit.evaluate`). Prints one line per (seed, scale) and type, then the pooled
figures per type over every run, and the look-alikes that were raised.

    python benchmarks/eval_types.py --seeds 404,505,606 --scales 0.02,0.1,0.3 --days 14

Use seeds that were not used while tuning (the docs say which were).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from collections import defaultdict
from pathlib import Path

from insights_kit import evaluate, store
from insights_kit.detect import run_detect
from insights_kit.schema import INSIGHT_TYPES
from insights_kit.simulate import simulate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="404,505,606")
    parser.add_argument("--scales", default="0.05")
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--types", default=",".join(INSIGHT_TYPES), help="types to print (all are scored)")
    args = parser.parse_args()
    types = args.types.split(",")
    pooled: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    region_days = 0.0
    for scale in (float(s) for s in args.scales.split(",")):
        for seed in (int(s) for s in args.seeds.split(",")):
            work = Path(tempfile.mkdtemp(prefix=f"eval-{seed}-"))
            try:
                simulate(work / "tree", days=args.days, seed=seed, scale=scale, progress=False)
                labels = evaluate.load_labels(work / "tree" / "labels.json")
                # the trail's home region, as a user configures it (global events are analysed there)
                run_detect([work / "tree"], work / "out", home_region=labels["home_region"], progress=False)
                result = evaluate.score(store.read_events(work / "out"), labels)
            finally:
                shutil.rmtree(work, ignore_errors=True)
            region_days += len(labels["regions"]) * args.days
            for kind in types:
                m = result["by_type"].get(kind)
                if m is None:
                    continue
                for key in ("labelled", "detected", "starts", "true_starts", "false_starts"):
                    pooled[kind][key] += m[key]
                # a look-alike of this type raised (attribution by overlap alone is not enough:
                # cloud-service calls span whole days)
                lookalike_type = {x["id"]: x.get("type") for x in labels["incidents"]}
                raised = [f for f in m["false"] if lookalike_type.get(f["lookalike"]) == kind]
                pooled[kind]["lookalikes_raised"] += len(raised)
                print(f"seed {seed} scale {scale}: {kind:24} recall {m['recall']} ({m['detected']}/{m['labelled']}) "
                      f"precision {m['precision']} false {m['false_starts']} delay max {m['max_delay']}")
                for miss in m["missed"]:
                    print(f"    missed {miss['id']} {miss['scenario']} {miss['region']} {miss['object']} {miss['start']}")
                for false in m["false"]:
                    print(f"    false  {false['eventTime']} {false['region']} {false['object']}"
                          f" (look-alike: {false['lookalikeScenario']})")
    print("\npooled over every run:")
    for kind in types:
        p = pooled[kind]
        recall = p["detected"] / p["labelled"] if p["labelled"] else None
        precision = p["true_starts"] / p["starts"] if p["starts"] else None
        print(f"  {kind:24} recall {recall if recall is None else round(recall, 3)} ({p['detected']}/{p['labelled']}) "
              f"precision {precision if precision is None else round(precision, 3)} "
              f"false Starts per region-day {round(p['false_starts'] / region_days, 4)} "
              f"look-alikes of the type raised {p['lookalikes_raised']}")


if __name__ == "__main__":
    main()
