"""Accept / reject: W&B's own validator against tuneserve's POST /studies, over the corpus of
tests/support/wandb_corpus.py and W&B's six example sweep files.

For each document: W&B's verdict (`sweeps.config.schema_violations_from_proposed_config`, W&B's
validator, loaded from --sweeps-src; an exception counts as a refusal), the verdict the corpus
records for W&B (checked here against the real thing), and tuneserve's (a 201 or a 422 from the
app over a temporary SQLite database). Prints the agreement and every document where tuneserve
and W&B differ, with the recorded reason.

    python benchmarks/wandb_compat.py --sweeps-src /work/.mirror/wandb+sweeps/repo
"""
from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._wandb_sweeps import load_sweeps  # noqa: E402


def wandb_accepts(sweeps, doc) -> bool:
    try:
        return not sweeps.config.schema_violations_from_proposed_config(doc)
    except Exception:  # noqa: BLE001 - W&B's validator raises on some malformed documents
        return False


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sweeps-src", required=True, help="W&B's sweeps: a checkout or its bare git mirror")
    args = ap.parse_args()
    sweeps = load_sweeps(args.sweeps_src)
    logging.disable(logging.WARNING)

    from fastapi.testclient import TestClient

    from tuneserve_service.config import Settings
    from tuneserve_service.db.migrate import upgrade
    from tuneserve_service.main import create_app
    from tests.support.wandb_corpus import ALL, EXAMPLES

    tmp = tempfile.mkdtemp(prefix="wandb-compat-")
    url = f"sqlite:///{tmp}/compat.db"
    upgrade(url)
    rows = []
    with TestClient(create_app(Settings(database_url=url, reaper_interval=60))) as client:
        for case in ALL:
            if any(isinstance(v, float) and v != v for v in _leaves(case.doc)):
                r = client.post("/api/v1/studies", content=yaml.safe_dump(case.doc),
                                headers={"content-type": "application/yaml"})
            else:
                r = client.post("/api/v1/studies", json=case.doc)
            rows.append((case.id, wandb_accepts(sweeps, case.doc), case.wandb, r.status_code == 201, case.why,
                         r.json()["detail"][0]["msg"] if r.status_code == 422 else ""))
        for name, text in EXAMPLES.items():
            r = client.post("/api/v1/studies", content=text, headers={"content-type": "application/yaml"})
            rows.append((f"example {name}", wandb_accepts(sweeps, yaml.safe_load(text)), True, r.status_code == 201,
                         "", r.text[:200] if r.status_code != 201 else ""))

    recorded_wrong = [r for r in rows if r[1] != r[2]]
    wb_yes = [r for r in rows if r[1]]
    wb_no = [r for r in rows if not r[1]]
    print(f"{len(rows)} documents ({len(EXAMPLES)} of them W&B's example files)")
    print(f"W&B's validator accepts {len(wb_yes)}, refuses {len(wb_no)}; the corpus records W&B's verdict "
          f"correctly for {len(rows) - len(recorded_wrong)} of {len(rows)}")
    same_yes = sum(1 for r in wb_yes if r[3])
    same_no = sum(1 for r in wb_no if not r[3])
    print(f"tuneserve accepts {same_yes} of the {len(wb_yes)} W&B accepts, and refuses {same_no} of the "
          f"{len(wb_no)} W&B refuses: {100 * (same_yes + same_no) / len(rows):.1f}% the same verdict")
    examples = [r for r in rows if r[0].startswith("example")]
    print(f"W&B's example files: tuneserve accepts {sum(r[3] for r in examples)} of {len(examples)}")
    print("\nwhere tuneserve and W&B's validator differ:")
    for case_id, wb, _, ours, why, msg in rows:
        if wb != ours:
            print(f"  {case_id}: W&B {'accepts' if wb else 'refuses'}, tuneserve {'accepts' if ours else 'refuses'}"
                  f" -- {why or '(no reason recorded)'}{': ' + msg if msg else ''}")
    for case_id, wb, recorded, *_ in recorded_wrong:
        print(f"  CORPUS WRONG: {case_id}: W&B {'accepts' if wb else 'refuses'}, the corpus says otherwise")


def _leaves(v):
    if isinstance(v, dict):
        for x in v.values():
            yield from _leaves(x)
    elif isinstance(v, list):
        for x in v:
            yield from _leaves(x)
    else:
        yield v


if __name__ == "__main__":
    main()
