#!/usr/bin/python3
"""Times the API's documented list queries, /servers and /metrics: p50 and p99 over REPEAT
requests each (after one warm-up), one client, keep-alive, on 127.0.0.1.

    time.py BASE_URL TOKEN [REPEAT]
"""
import http.client, json, sys, time, urllib.parse

base, token = sys.argv[1], sys.argv[2]
repeat = int(sys.argv[3]) if len(sys.argv) > 3 else 100
u = urllib.parse.urlparse(base)
conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)

def get(path):
    conn.request("GET", path, headers={"Authorization": f"Bearer {token}"})
    r = conn.getresponse()
    body = r.read()
    if r.status != 200:
        raise SystemExit(f"{path}: HTTP {r.status}: {body[:300]!r}")
    return body

QUERIES = [
    ("newest first (default)", "/alerts"),
    ("orderBy=severity", "/alerts?orderBy=severity"),
    ("server", "/alerts?server=db07"),
    ("server, orderBy=severity", "/alerts?server=db07&orderBy=severity"),
    ("orderBy=server", "/alerts?orderBy=server"),
    ("orderBy=principal", "/alerts?orderBy=principal"),
    ("status=Active, orderBy=sourceIp", "/alerts?status=Active&orderBy=sourceIp"),
    ("alertType", "/alerts?alertType=PostgreSQL_BruteForce"),
    ("severity=Medium", "/alerts?severity=Medium"),
    ("status=Dismissed", "/alerts?status=Dismissed"),
    ("sourceIp", "/alerts?sourceIp=203.0.7.42"),
    ("time range + status", "/alerts?from=2026-11-20T00:00:00Z&to=2026-11-21T00:00:00Z&status=Active"),
    ("time range, orderBy=severity", "/alerts?from=2026-11-20T00:00:00Z&to=2026-11-21T00:00:00Z&orderBy=severity"),
    ("$top=1000", "/alerts?$top=1000"),
    ("/servers", "/servers"),
    ("/metrics", "/metrics"),
]

def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]

print(f"{'query':34} {'p50 ms':>8} {'p99 ms':>8}")
worst = {}
for name, path in QUERIES:
    get(path)
    ts = []
    for _ in range(repeat):
        t = time.perf_counter()
        get(path)
        ts.append((time.perf_counter() - t) * 1000)
    p50, p99 = pct(ts, 50), pct(ts, 99)
    worst[name] = (p50, p99)
    print(f"{name:34} {p50:8.2f} {p99:8.2f}")

# A walk of every page of the severity order, as an export would.
t = time.perf_counter()
path, pages = "/alerts?orderBy=severity&$top=1000", 0
while path:
    v = json.loads(get(path))
    pages += 1
    nxt = v.get("nextLink")
    path = urllib.parse.urlparse(nxt)._replace(scheme="", netloc="").geturl() if nxt else None
print(f"{'walk of every page, orderBy=severity':34} {pages} pages in {time.perf_counter() - t:.2f} s")
lists = [v for k, v in worst.items() if not k.startswith("/")]
print(f"list queries: worst p50 {max(p for p, _ in lists):.2f} ms (target 10), "
      f"worst p99 {max(q for _, q in lists):.2f} ms (target 30); "
      f"/servers p50 {worst['/servers'][0]:.2f} ms, /metrics p50 {worst['/metrics'][0]:.2f} ms (target 20)")

# The console's pages over the same store, signed in with the token as a browser is (the
# form's own cookie, then the session's); the target is 100 ms per page.
def console():
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
    c.request("GET", "/console/signin")
    r = c.getresponse()
    r.read()
    form = [h for k, h in r.getheaders() if k.lower() == "set-cookie" and h.startswith("pgvigil_signin=")][0].split(";")[0]
    c.request("POST", "/console/signin", body=f"csrf={form.split('=', 1)[1]}&token={token}",
              headers={"Cookie": form, "Content-Type": "application/x-www-form-urlencoded"})
    r = c.getresponse()
    r.read()
    session = [h for k, h in r.getheaders() if k.lower() == "set-cookie" and h.startswith("pgvigil_session=")][0].split(";")[0]
    def page(path):
        c.request("GET", path, headers={"Cookie": session})
        r = c.getresponse()
        body = r.read()
        if r.status != 200:
            raise SystemExit(f"{path}: HTTP {r.status}: {body[:300]!r}")
        return body
    one = json.loads(get("/alerts?$top=1"))["value"][0]
    pages = [
        ("console: overview", "/console"),
        ("console: overview, 30 days", "/console?range=30d"),
        ("console: alerts", "/console/alerts"),
        ("console: alerts, severity first", "/console/alerts?sort=severity"),
        ("console: alerts, by source", "/console/alerts?sort=sourceIp"),
        ("console: alerts of a principal", "/console/alerts?principal=" + urllib.parse.quote(one["entities"].get("principal") or "app")),
        ("console: an alert", "/console/alerts/" + one["id"]),
        ("console: a source", "/console/sources/" + (one["entities"].get("sourceIp") or "203.0.7.42")),
        ("console: servers", "/console/servers"),
    ]
    worst = 0.0
    for name, path in pages:
        page(path)
        ts = []
        for _ in range(max(10, repeat // 5)):
            t = time.perf_counter()
            page(path)
            ts.append((time.perf_counter() - t) * 1000)
        p50, p99 = pct(ts, 50), pct(ts, 99)
        worst = max(worst, p50)
        print(f"{name:34} {p50:8.2f} {p99:8.2f}")
    print(f"console pages: worst p50 {worst:.2f} ms (target 100)")

console()
