"""Loads a ClickHouse server configuration in a real ClickHouse engine (chdb, the embedded
ClickHouse from PyPI) and answers queries against it.

The engine reads `config.xml` from its working directory, as clickhouse-local does. The `config`
files are merged into it and the `users` files into `users.xml` (its `users_config`) the way the
server merges `config.d/` and `users.d/`: an element another file already has is merged into,
child by child, a new one is added. The environment given is set before the engine
starts, as the container's environment would be. Each query runs in a fresh engine over the same
data directory, as a restarted server would (older chdb releases cannot start twice in one
process); a query may hold several statements, the last one's rows are returned.

Input (stdin): {"config": ["<clickhouse>...</clickhouse>", ...], "users": [...], "env": {...},
                "queries": ["SELECT ...", ...]}
Output (stdout): {"engine": "<version>" | null, "load_error": "...", "results": [rows | {"error"}]}
Exit status 0 when the configuration loaded (a query may still fail), 1 when it did not.
"""

import json
import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET


def merge(into, other):
    for child in other:
        same = into.find(child.tag)
        if same is not None and len(child):
            merge(same, child)
        elif same is not None:
            into.remove(same)
            into.append(child)
        else:
            into.append(child)


def merged(files, extra=()):
    root = ET.Element("clickhouse")
    for text in files:
        merge(root, ET.fromstring(text))
    for child in extra:
        root.append(child)
    return ET.tostring(root, encoding="unicode")


def one(query):
    """In a child process: runs one query in the working directory's engine."""
    import chdb

    try:
        out = chdb.query(query, "JSONCompact", path=os.path.join(os.getcwd(), "data"))
        text = str(out).strip()
        rows = json.loads(text)["data"] if text else []
    except Exception as e:  # the engine's own message: the test asserts on it
        rows = {"error": str(e).strip().splitlines()[0][:600]}
    print(json.dumps(rows))


def run(work, env, query):
    child = subprocess.run(
        [sys.executable, __file__, "--one"],
        input=query,
        capture_output=True,
        text=True,
        cwd=work,
        env=env,
    )
    lines = child.stdout.strip().splitlines()
    if child.returncode != 0 or not lines:
        # The engine's reason is its first exception; the rest of its log is shutdown noise.
        reasons = [l for l in child.stderr.splitlines() if "DB::Exception" in l]
        reason = reasons[0] if reasons else child.stderr.strip()[-600:]
        return {"error": f"engine exited {child.returncode}: {reason[:600]}"}
    return json.loads(lines[-1])


def main():
    req = json.load(sys.stdin)
    work = tempfile.mkdtemp(prefix="wbstack-clickhouse-")
    extra = []
    if req.get("users"):
        with open(os.path.join(work, "users.xml"), "w") as f:
            f.write(merged(req["users"]))
        users_config = ET.Element("users_config")
        users_config.text = "users.xml"
        extra.append(users_config)
    with open(os.path.join(work, "config.xml"), "w") as f:
        f.write(merged(req["config"], extra))
    env = dict(os.environ)
    env.update(req.get("env", {}))
    first = run(work, env, "SELECT version()")
    if isinstance(first, dict):
        print(json.dumps({"engine": None, "load_error": first["error"], "results": []}))
        sys.exit(1)
    results = [run(work, env, q) for q in req["queries"]]
    print(json.dumps({"engine": first[0][0], "results": results}))


if __name__ == "__main__":
    if sys.argv[1:] == ["--one"]:
        one(sys.stdin.read())
    else:
        main()
