"""Serves ClickHouse's HTTP interface from a real ClickHouse engine (chdb) that loaded one
replica's configuration, for the verify probe's tests.

The configuration is merged as `clickhouse_load.py` merges it and written to `config.xml` in a
fresh working directory, which the engine reads as clickhouse-local does; the pod's environment
is set before the engine starts. Each request is `POST /` with the query as its body, the user in
`X-ClickHouse-User` and the password in `X-ClickHouse-Key`, as ClickHouse's HTTP interface takes
them; `default_format` in the query string sets the output format. The engine runs every query;
the harness does only what the embedded engine cannot: it checks the user's password against
the loaded users configuration (`password`, `password from_env`, `password_sha256_hex`) and
answers a refused one as the server does (`Code: 516 ... AUTHENTICATION_FAILED`).

Input (stdin): {"config": [...], "users": [...], "env": {...}}
Prints `listening <port>` once it serves; runs until killed.
"""

import hashlib
import http.server
import json
import os
import sys
import tempfile
import threading
import urllib.parse
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.dirname(__file__))
from clickhouse_load import merged  # noqa: E402


def passwords(users_xml, env):
    """{user: check(password) -> bool} from the merged users configuration."""
    out = {}
    root = ET.fromstring(users_xml)
    found = root.find("users")
    for user in found if found is not None else []:
        plain = user.find("password")
        hashed = user.find("password_sha256_hex")
        if hashed is not None:
            want = hashed.text.strip().lower()
            out[user.tag] = lambda p, w=want: hashlib.sha256(p.encode()).hexdigest() == w
        elif plain is not None and plain.get("from_env"):
            want = env.get(plain.get("from_env"), "")
            out[user.tag] = lambda p, w=want: p == w
        else:
            want = (plain.text or "") if plain is not None else ""
            out[user.tag] = lambda p, w=want: p == w
    return out


def main():
    req = json.load(sys.stdin)
    work = tempfile.mkdtemp(prefix="wbstack-clickhouse-http-")
    users_xml = merged(req.get("users", []))
    with open(os.path.join(work, "users.xml"), "w") as f:
        f.write(users_xml)
    users_config = ET.Element("users_config")
    users_config.text = "users.xml"
    with open(os.path.join(work, "config.xml"), "w") as f:
        f.write(merged(req["config"], [users_config]))
    env = req.get("env", {})
    os.environ.update(env)
    os.chdir(work)
    from chdb import session

    engine = session.Session(os.path.join(work, "data"))
    lock = threading.Lock()
    checks = passwords(users_xml, env)

    class Handler(http.server.BaseHTTPRequestHandler):
        def answer(self, status, body):
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self):
            length = int(self.headers.get("Content-Length", "0"))
            sql = self.rfile.read(length).decode()
            q = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)
            user = self.headers.get("X-ClickHouse-User", "default")
            key = self.headers.get("X-ClickHouse-Key", "")
            check = checks.get(user)
            if check is None or not check(key):
                return self.answer(
                    403,
                    f"Code: 516. DB::Exception: {user}: Authentication failed: password is incorrect, "
                    "or there is no user with such name. (AUTHENTICATION_FAILED)\n",
                )
            fmt = q.get("default_format", ["TabSeparated"])[0]
            try:
                with lock:
                    out = str(engine.query(sql, fmt))
            except Exception as e:  # the engine's own message, as the server sends it
                return self.answer(500, str(e).strip().splitlines()[0][:1000] + "\n")
            self.answer(200, out)

        def log_message(self, *a):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(f"listening {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
