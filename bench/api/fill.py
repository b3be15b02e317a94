#!/usr/bin/python3
"""Fills a pgvigil store with N alerts made from real ones (templates: alert records that
`pgvigil analyze --json` printed), spread over 20 servers, 30 days, 5,000 source addresses,
every type and severity of the templates, a fifth of them dismissed or resolved.

    fill.py sqlite FILE TEMPLATES.jsonl N
    fill.py postgres URL TEMPLATES.jsonl N
"""
import json, random, sys, uuid, datetime

kind, where, templates_path, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
templates = [json.loads(l) for l in open(templates_path) if l.strip()]
assert templates, "no template alerts"
rng = random.Random(7)
servers = [f"db{i:02d}" for i in range(20)]
sources = [f"203.0.{i // 250}.{i % 250 + 1}" for i in range(5000)]
now = datetime.datetime(2026, 12, 1, tzinfo=datetime.timezone.utc)

def iso(t):
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"

def rows():
    for i in range(n):
        t = templates[i % len(templates)]
        a = json.loads(json.dumps(t))
        end = now - datetime.timedelta(seconds=rng.randrange(30 * 86400))
        start = end - datetime.timedelta(seconds=rng.randrange(600))
        a["id"] = str(uuid.UUID(int=rng.getrandbits(128), version=5))
        a["server"] = rng.choice(servers)
        src = rng.choice(sources)
        ents = a.setdefault("entities", {})
        if ents.get("sourceIp"):
            ents["sourceIp"] = src
        a["startTimeUtc"], a["endTimeUtc"] = iso(start), iso(end)
        status = rng.choices(["Active", "InProgress", "Dismissed", "Resolved"], [70, 10, 10, 10])[0]
        a.pop("status", None)
        yield (a["id"], a["server"], a["alertType"], a["severity"], a["displayName"], status,
               a["startTimeUtc"], a["endTimeUtc"], ents.get("sourceIp"),
               ents.get("principal"), json.dumps(a), iso(end), iso(end), iso(end)[:7])

cols = ("id, server, alert_type, severity, display_name, status, start_time, end_time, "
        "source_ip, principal, record, created_at, updated_at, part")
if kind == "sqlite":
    import sqlite3
    c = sqlite3.connect(where)
    c.executemany(f"INSERT INTO alerts ({cols}) VALUES ({', '.join('?' * 14)})", rows())
    c.executemany("INSERT OR IGNORE INTO servers (name) VALUES (?)", [(s,) for s in servers])
    c.commit()
else:
    import psycopg2, psycopg2.extras
    c = psycopg2.connect(where)
    cur = c.cursor()
    # The central store keeps alerts by the month they were stored: one partition each.
    all_rows = list(rows())
    for month in sorted({r[-1] for r in all_rows}):
        cur.execute("SELECT pgvigil_partition(%s)", (month,))
    psycopg2.extras.execute_values(cur, f"INSERT INTO alerts ({cols}) VALUES %s", all_rows, page_size=2000)
    psycopg2.extras.execute_values(cur, "INSERT INTO servers (name) VALUES %s ON CONFLICT DO NOTHING",
                                   [(s,) for s in servers])
    c.commit()
    # As autovacuum would soon after (an insert-only table is vacuumed too since PostgreSQL 13).
    c.autocommit = True
    c.cursor().execute("VACUUM ANALYZE")
print(f"{n} alerts stored", file=sys.stderr)
