"""A deliberately vulnerable web endpoint for the SQL injection test: GET /item?id=…
pastes the parameter into SQL, as careless code does. Listens on 127.0.0.1 only.

usage: vulnerable_app.py PORT DSN
"""
import http.server
import sys
import urllib.parse

import psycopg2

PORT = int(sys.argv[1])
DSN = sys.argv[2]
conn = psycopg2.connect(DSN, application_name="shop-web")
conn.autocommit = True


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        url = urllib.parse.urlparse(self.path)
        item = urllib.parse.parse_qs(url.query).get("id", ["1"])[0]
        status, body = 200, ""
        try:
            with conn.cursor() as cur:
                # The vulnerability under test: user input in the SQL text.
                cur.execute("SELECT id, name FROM items WHERE id = " + item)
                rows = cur.fetchall()
            body = "".join(f"<li>{r[0]}: {r[1]}</li>" for r in rows)
        except Exception:
            status, body = 500, "error"
        data = f"<html><body><ul>{body}</ul></body></html>".encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


server = http.server.HTTPServer(("127.0.0.1", PORT), Handler)
print("ready", flush=True)
server.serve_forever()
