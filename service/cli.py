"""The `tuneserve` command: server, db upgrade, study create/status/export, worker, demo."""
from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import httpx

DEFAULT_SERVER = "http://127.0.0.1:8000"


def _server(args: argparse.Namespace) -> None:
    import uvicorn

    from service.config import Settings
    from service.main import create_app

    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    settings = Settings(**overrides)
    print(f"tuneserve: serving on http://{settings.host}:{settings.port} with {settings.database_url}"
          f" ({args.workers} process{'es' if args.workers > 1 else ''})", flush=True)
    if args.workers > 1:
        # Several processes need the app as an import string; each builds it from the environment.
        # Migrate once here so the processes do not all try at the same moment.
        from service.db.migrate import upgrade

        if settings.auto_migrate:
            upgrade(settings.database_url)
        uvicorn.run("service.main:create_app", factory=True, host=settings.host, port=settings.port,
                    workers=args.workers, log_level=settings.log_level, access_log=args.access_log)
        return
    uvicorn.run(
        create_app(settings), host=settings.host, port=settings.port,
        log_level=settings.log_level, access_log=args.access_log,
    )


def _db_upgrade(args: argparse.Namespace) -> None:
    from service.config import Settings
    from service.db.migrate import upgrade

    url = args.database_url or Settings().database_url
    upgrade(url)
    print(f"database at {url} is at the latest schema")


def _client(args: argparse.Namespace) -> httpx.Client:
    headers = {"Authorization": f"Bearer {args.token}"} if args.token else {}
    return httpx.Client(base_url=args.server.rstrip("/") + "/api/v1", headers=headers, timeout=30)


def _check(resp: httpx.Response) -> dict | list:
    if resp.status_code >= 400:
        sys.exit(f"error {resp.status_code}: {resp.text}")
    return resp.json() if resp.content else {}


def _study_create(args: argparse.Namespace) -> None:
    text = Path(args.file).read_text()
    is_yaml = args.file.endswith((".yaml", ".yml"))
    if args.name:
        import yaml

        doc = yaml.safe_load(text) if is_yaml else json.loads(text)
        doc["name"] = args.name
        text, is_yaml = json.dumps(doc), False
    with _client(args) as c:
        study = _check(c.post("/studies", content=text,
                              headers={"content-type": "application/yaml" if is_yaml else "application/json"}))
    print(json.dumps(study, indent=2))


def _study_status(args: argparse.Namespace) -> None:
    with _client(args) as c:
        s = _check(c.get(f"/studies/{args.name}"))
    counts = s["counts"]
    print(f"{s['name']}: {s['state']}, method {s['method']}, {s['metric']['goal']} {s['metric']['name']}")
    print("trials: " + ", ".join(f"{k} {v}" for k, v in counts.items() if v))
    if s["best_trial"]:
        b = s["best_trial"]
        print(f"best: trial {b['number']} value {b['value']:.6g} params {json.dumps(b['params'])}")


def _study_export(args: argparse.Namespace) -> None:
    rows, offset = [], 0
    with _client(args) as c:
        while True:
            page = _check(c.get(f"/studies/{args.name}/trials", params={"limit": 1000, "offset": offset}))
            rows += page["items"]
            offset += len(page["items"])
            if offset >= page["total"] or not page["items"]:
                break
    out = open(args.output, "w", newline="") if args.output else sys.stdout
    if args.format == "json":
        json.dump(rows, out, indent=2)
        out.write("\n")
    else:
        from service.space import flatten_params

        flat = [{"number": r["number"], "state": r["state"], "value": r["value"],
                 **{f"params.{k}": v for k, v in flatten_params(r["params"]).items()}} for r in rows]
        fields = sorted({k for r in flat for k in r}, key=lambda k: (k.startswith("params."), k))
        writer = csv.DictWriter(out, fieldnames=fields)
        writer.writeheader()
        writer.writerows(flat)
    if args.output:
        out.close()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tuneserve", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    sp = sub.add_parser("server", help="run the API server (uvicorn)")
    sp.add_argument("--host", default=None, help="default TUNESERVE_HOST or 127.0.0.1")
    sp.add_argument("--port", type=int, default=None, help="default TUNESERVE_PORT or 8000")
    sp.add_argument("--workers", type=int, default=1,
                    help="server processes (stateless, they share the database); 1 for SQLite")
    sp.add_argument("--access-log", action="store_true")
    sp.set_defaults(func=_server)

    dp = sub.add_parser("db", help="database maintenance")
    dsub = dp.add_subparsers(dest="db_command", required=True)
    up = dsub.add_parser("upgrade", help="run the migrations to the latest schema")
    up.add_argument("--database-url", default=None, help="default TUNESERVE_DATABASE_URL")
    up.set_defaults(func=_db_upgrade)

    st = sub.add_parser("study", help="create and inspect studies over REST")
    st.add_argument("--server", default=DEFAULT_SERVER)
    st.add_argument("--token", default=None)
    ssub = st.add_subparsers(dest="study_command", required=True)
    c = ssub.add_parser("create", help="create a study from a JSON file or a W&B sweep YAML")
    c.add_argument("file")
    c.add_argument("--name", default=None, help="override the name in the file")
    c.set_defaults(func=_study_create)
    s = ssub.add_parser("status", help="counts and best trial")
    s.add_argument("name")
    s.set_defaults(func=_study_status)
    e = ssub.add_parser("export", help="every trial as CSV or JSON")
    e.add_argument("name")
    e.add_argument("--format", choices=("csv", "json"), default="csv")
    e.add_argument("--output", "-o", default=None)
    e.set_defaults(func=_study_export)

    sub.add_parser("worker", help="run a worker daemon (see `tuneserve worker --help`)", add_help=False)
    sub.add_parser("demo", help="server + two CPU workers + a study on digits, with live progress", add_help=False)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # The worker side needs torch; import it only for these commands so a server needs no torch.
    if argv and argv[0] == "worker":
        from workers.cli import main as worker_main

        return worker_main(argv[1:])
    if argv and argv[0] == "demo":
        from workers.demo import main as demo_main

        return demo_main(argv[1:])
    args = build_parser().parse_args(argv)
    args.func(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
