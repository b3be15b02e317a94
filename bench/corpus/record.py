#!/usr/bin/python3
"""Records the corpus of real traces: real attack tools and real benign clients against a real
PostgreSQL 15 that writes stderr, csvlog and jsonlog at once, one scenario per set of files.

    bench/corpus/record.py OUT_DIR [SCENARIO ...]
    bench/corpus/record.py --prefixes OUT_DIR    (the prefix golden files: tests/fixtures/prefixes)

Each scenario gets OUT_DIR/<name>/postgresql.{log,csv,json}, byte for byte as the server
wrote them, and labels.json: the actors (each 127.x source address, benign or not, and the
kind of place `pgvigil eval` rewrites it to), the baseline those actors had in the 14 days
before (`pgvigil eval` writes it), and the alerts a user expects (`expect`). Alerts on a benign
actor's address, or any alert in a benign scenario, are false positives.

Tools run at several intensities around each detection threshold (3, 5, 8, 12 attempts;
success early and late; 1, 4 and 64 parallel tasks), beside benign traffic that looks like
attacks: psql typed at a terminal with typos (its password prompt opens a bare connection
first, and libpq's TLS fallback doubles each failure), application pools in two cloud
regions, ORM queries, pg_dump, health checks, a pooler in front.

Needs: PostgreSQL 15 server binaries, hydra, medusa, ncrack, nmap, patator, sqlmap,
pgbouncer, gcc, openssl, python3-psycopg2, python3-venv, default-jdk-headless and
libpostgresql-jdbc-java, check-postgres and prometheus-postgres-exporter (Debian packages); the ORM scenarios' Python libraries are installed
with pip into a virtualenv on first use (ORM_PACKAGES). Talks only to 127.0.0.0/8.
Run as root (the server runs as `postgres`) or as an ordinary user.
"""
import json
import os
import pty
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
APP_PW = "Tr0ub4dor&3x"
ALICE_PW = "alice-Correct-7"
MD5_PW = "md5pass-9"
# Real-world prefixes, one per scenario in turn: the corpus exercises prefix inference too.
PREFIXES = [
    "%m [%p] %q%u@%d ",  # Debian / Ubuntu
    "%m [%p] ",  # PostgreSQL's default (RHEL/PGDG packages)
    "%t:%r:%u@%d:[%p]:",  # Amazon RDS / Aurora
    "%m [%p] %q%u@%d %h ",
    "%t [%p]: [%l-1] user=%u,db=%d,app=%a,client=%h ",  # pgBadger's recommendation
    "%t [%p]: [%l-1] db=%d,user=%u ",  # Azure Flexible Server
    "%m [%p] %q[user=%u,db=%d,app=%a] ",
    "%t [%p]: [%l-1] user=%u,db=%d,app=%a,client=%h ",
]


JDBC_JAR = "/usr/share/java/postgresql.jar"
# The Python libraries of the ORM scenarios, at the versions the corpus was recorded with.
ORM_PACKAGES = ["SQLAlchemy==2.1.9", "alembic==1.20.1", "Django==5.2.19", "psycopg[binary]==3.3.9"]


def orm_env():
    """A virtualenv with the ORM scenarios' libraries (made on first use), and its python."""
    venv = os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "pgvigil-corpus-orm")
    py = os.path.join(venv, "bin", "python")
    if not os.path.exists(py):
        subprocess.run(["/usr/bin/python3", "-m", "venv", "--system-site-packages", venv], check=True)
        subprocess.run([py, "-m", "pip", "install", "--quiet", *ORM_PACKAGES], check=True)
    os.chmod(os.path.dirname(venv), 0o755)
    return py


def pg_bin():
    try:
        d = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True).stdout.strip()
        if os.path.exists(os.path.join(d, "initdb")):
            return d
    except FileNotFoundError:
        pass
    for v in ("15", "16", "17"):
        d = f"/usr/lib/postgresql/{v}/bin"
        if os.path.exists(os.path.join(d, "initdb")):
            return d
    sys.exit("PostgreSQL server binaries not found: apt-get install -y postgresql-15")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def as_postgres(cmd):
    return (["runuser", "-u", "postgres", "--"] + cmd) if os.geteuid() == 0 else cmd


class Cluster:
    def __init__(self, work):
        self.bin = pg_bin()
        self.work = work
        self.data = os.path.join(work, "data")
        self.port = free_port()
        if os.geteuid() == 0:
            subprocess.run(["chown", "-R", "postgres", work], check=True)
        pw = os.path.join(work, "pw")
        with open(pw, "w") as f:
            f.write("Sup3r-secret")
        subprocess.run(as_postgres([os.path.join(self.bin, "initdb"), "-D", self.data, "-U", "postgres",
                                    "--auth-host=scram-sha-256", "--auth-local=trust", "-E", "UTF8",
                                    "--locale=C", f"--pwfile={pw}"]), check=True, capture_output=True)
        cert, key = os.path.join(self.data, "server.crt"), os.path.join(self.data, "server.key")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                        "-subj", "/CN=127.0.0.1", "-keyout", key, "-out", cert],
                       check=True, capture_output=True)
        os.chmod(key, 0o600)
        if os.geteuid() == 0:
            subprocess.run(["chown", "postgres", cert, key], check=True)
        with open(os.path.join(self.data, "postgresql.conf"), "a") as f:
            f.write(f"""
listen_addresses = '127.0.0.1'
port = {self.port}
unix_socket_directories = '{work}'
max_connections = 200
ssl = on
logging_collector = on
log_destination = 'stderr,csvlog,jsonlog'
log_directory = 'log'
log_filename = 'start.log'
log_rotation_age = 0
log_rotation_size = 0
log_connections = on
log_disconnections = on
log_line_prefix = '{PREFIXES[0]}'
log_timezone = 'UTC'
lc_messages = 'C'
password_encryption = 'scram-sha-256'
shared_preload_libraries = 'pgaudit'
pgaudit.log = 'none'
include_if_exists = 'scenario.conf'
""")
        with open(os.path.join(self.data, "pg_hba.conf"), "w") as f:
            f.write("local all all trust\n"
                    "host all md5user 127.0.0.0/8 md5\n"
                    "host all all 127.0.0.67/32 reject\n"
                    "host all all 127.0.0.0/8 scram-sha-256\n")
        log = os.path.join(work, "startup.log")
        open(log, "w").close()
        if os.geteuid() == 0:
            subprocess.run(["chown", "postgres", log], check=True)
        subprocess.run(as_postgres([os.path.join(self.bin, "pg_ctl"), "-D", self.data, "-w", "-l", log,
                                    "start"]), check=True, capture_output=True)
        self.log_dir = os.path.join(self.data, "log")

    def psql(self, sql, db="postgres"):
        r = subprocess.run([os.path.join(self.bin, "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                            "-h", self.work, "-p", str(self.port), "-U", "postgres", "-d", db, "-c", sql],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"psql {sql}: {r.stderr}")
        return r.stdout.strip()

    def stop(self):
        subprocess.run(as_postgres([os.path.join(self.bin, "pg_ctl"), "-D", self.data, "-m", "fast", "-w",
                                    "stop"]), capture_output=True)


def shim():
    so = os.path.join(tempfile.gettempdir(), "pgvigil-bindshim.so")
    subprocess.run(["gcc", "-shared", "-fPIC", "-O2", "-o", so, os.path.join(HERE, "bindshim.c"), "-ldl"],
                   check=True)
    return so


class Recorder:
    def __init__(self, out, only):
        self.out = out
        self.only = set(only)
        self.work = tempfile.mkdtemp(prefix="pgvigil-corpus-")
        os.chmod(self.work, 0o755)
        self.so = shim()
        self.cl = Cluster(self.work)
        self.port = self.cl.port
        self.n = 0
        self.files = os.path.join(self.work, "files")
        os.makedirs(self.files)
        os.chmod(self.files, 0o777)
        self.setup()
        self.results = []

    def setup(self):
        c = self.cl.psql
        c(f"CREATE ROLE app LOGIN PASSWORD '{APP_PW}'")
        c(f"CREATE ROLE alice LOGIN PASSWORD '{ALICE_PW}'")
        c("CREATE ROLE orders LOGIN PASSWORD 'orders-pw-2026'")
        c("CREATE ROLE monitor LOGIN PASSWORD 'mon-pw' IN ROLE pg_monitor")
        c("CREATE ROLE backup LOGIN PASSWORD 'backup-pw' IN ROLE pg_read_all_data")
        c("CREATE ROLE newsvc LOGIN PASSWORD 'newsvc-pw'")
        c(f"SET password_encryption = 'md5'; CREATE ROLE md5user LOGIN PASSWORD '{MD5_PW}'")
        c("CREATE DATABASE appdb OWNER app")
        c("CREATE TABLE customers(id serial PRIMARY KEY, name text, email text); "
          "CREATE TABLE orders(id serial PRIMARY KEY, customer_id int, total numeric, status text); "
          "CREATE TABLE items(id int PRIMARY KEY, name text); "
          "INSERT INTO customers(name, email) SELECT 'c' || g, 'c' || g || '@example.com' FROM generate_series(1, 200) g; "
          "INSERT INTO orders(customer_id, total, status) SELECT g % 200 + 1, g, 'open' FROM generate_series(1, 2000) g; "
          "INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 20) g; "
          "GRANT ALL ON ALL TABLES IN SCHEMA public TO app, orders; "
          "GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO app, orders; "
          "GRANT SELECT ON ALL TABLES IN SCHEMA public TO alice", db="appdb")
        # Loaded for the pgaudit scenarios; it logs nothing until a scenario sets pgaudit.log.
        c("CREATE EXTENSION pgaudit")
        c("CREATE EXTENSION pgaudit", db="appdb")

    def configure(self, settings):
        path = os.path.join(self.cl.data, "scenario.conf")
        with open(path, "w") as f:
            for k, v in settings.items():
                f.write(f"{k} = '{v}'\n")
        if os.geteuid() == 0:
            subprocess.run(["chown", "postgres", path], check=True)

    def env(self, source, **extra):
        e = dict(os.environ)
        e.update({"LD_PRELOAD": self.so, "BIND_ADDR": source, "PGPORT": str(self.port),
                  "PGHOST": "127.0.0.1", "PGCONNECT_TIMEOUT": "10", "HOME": self.work,
                  "PAGER": "cat", "PSQL_PAGER": "cat"})
        e.update(extra)
        return e

    def words(self, n, right_at=None, right=APP_PW, tag="w"):
        """A wordlist of n passwords, the right one at position right_at (1-based) if given."""
        ws = [f"{tag}{i}-Summer20{i:02d}!" for i in range(1, n + 1)]
        if right_at:
            ws[right_at - 1] = right
        path = os.path.join(self.work, f"words-{tag}-{n}-{right_at}")
        with open(path, "w") as f:
            f.write("\n".join(ws) + "\n")
        return path

    def userlist(self, users):
        path = os.path.join(self.work, "users-" + "-".join(users)[:60])
        with open(path, "w") as f:
            f.write("\n".join(users) + "\n")
        return path

    def run(self, cmd, source, timeout=300, **extra):
        r = subprocess.run(cmd, env=self.env(source, **extra), capture_output=True, text=True,
                           timeout=timeout, cwd=self.work)
        return r

    # ---- one scenario ----
    def scenario(self, name, fn, labels, settings=None, prefix=None):
        if self.only and name not in self.only:
            return
        prefix = prefix or PREFIXES[self.n % len(PREFIXES)]
        self.n += 1
        c = self.cl.psql
        # Settings go in a file the configuration includes, not ALTER SYSTEM: the statement
        # that turns statement logging off again would be logged, and is no part of the
        # scenario.
        self.configure(dict({"log_filename": f"{name}.log", "log_line_prefix": prefix}, **(settings or {})))
        c("SELECT pg_reload_conf()")
        time.sleep(0.5)
        c("SELECT pg_rotate_logfile()")
        time.sleep(0.5)
        started = time.time()
        err = None
        try:
            fn()
        except Exception as e:  # a scenario that fails is reported, the others still run
            err = f"{type(e).__name__}: {e}"
        time.sleep(1.5)
        # The prefix stays until the file is rotated away: the scenario's file holds one prefix.
        self.configure(dict({"log_filename": "between.log", "log_line_prefix": prefix}, **(settings or {})))
        c("SELECT pg_reload_conf()")
        time.sleep(0.5)
        c("SELECT pg_rotate_logfile()")
        time.sleep(0.5)
        dest = os.path.join(self.out, name)
        os.makedirs(dest, exist_ok=True)
        for ext in ("log", "csv", "json"):
            src = os.path.join(self.cl.log_dir, f"{name}.{ext}")
            shutil.copyfile(src, os.path.join(dest, f"postgresql.{ext}"))
        labels = dict(labels)
        labels["scenario"] = name
        labels["log_line_prefix"] = prefix
        labels["settings"] = settings or {}
        labels["recorded"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started))
        with open(os.path.join(dest, "labels.json"), "w") as f:
            json.dump(labels, f, indent=1)
            f.write("\n")
        self.results.append((name, err, time.time() - started))
        print(f"{name}: {'FAILED ' + err if err else 'ok'} ({time.time() - started:.1f} s)", flush=True)

    # ---- clients ----
    def hydra(self, source, user=None, users=None, words=None, password=None, tasks=4, stop=False):
        cmd = ["hydra", "-I", "-q"]
        cmd += ["-l", user] if user else ["-L", users]
        cmd += ["-P", words] if words else ["-p", password]
        cmd += ["-t", str(tasks), "-s", str(self.port)] + (["-f"] if stop else []) + ["127.0.0.1", "postgres"]
        return self.run(cmd, source)

    def medusa(self, source, user, words, tasks=1, stop=False):
        cmd = ["medusa", "-h", "127.0.0.1", "-u", user, "-P", words, "-M", "postgres", "-n", str(self.port),
               "-t", str(tasks)] + (["-f"] if stop else [])
        return self.run(cmd, source)

    def ncrack(self, source, user, words, stop=True):
        cmd = ["ncrack", "--user", user, "-P", words, "-p", f"psql:{self.port}"] + (["-f"] if stop else []) + \
              ["127.0.0.1"]
        return self.run(cmd, source)

    def login(self, source, user, password, db="appdb", app=None, sslmode="prefer", sql="SELECT 1"):
        """One login with psycopg2 (libpq) from `source`; True if it worked."""
        script = ("import psycopg2,sys\n"
                  "try:\n"
                  "  c=psycopg2.connect(host='127.0.0.1',port=int(sys.argv[1]),user=sys.argv[2],password=sys.argv[3],"
                  "dbname=sys.argv[4],sslmode=sys.argv[5],**({'application_name':sys.argv[7]} if sys.argv[7] else {}))\n"
                  "  cur=c.cursor()\n"
                  "  for s in sys.argv[6].split(';;'):\n"
                  "    if s: cur.execute(s)\n"
                  "  c.close()\n"
                  "except psycopg2.OperationalError:\n"
                  "  sys.exit(3)\n")
        r = self.run(["/usr/bin/python3", "-c", script, str(self.port), user, password, db, sslmode, sql,
                      app or ""], source)
        return r.returncode == 0

    def psql_terminal(self, source, user, attempts, think=2.5, db="appdb"):
        """psql at a terminal: it connects without a password, is asked for one, prompts, and the
        person types it (`think` seconds later). One psql run per attempt."""
        for pw in attempts:
            pid, fd = pty.fork()
            if pid == 0:
                os.execve(os.path.join(self.cl.bin, "psql"),
                          ["psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", user, "-d", db, "-c",
                           "SELECT current_user"], self.env(source))
            buf = b""
            deadline = time.time() + 20
            while b"Password" not in buf and time.time() < deadline:
                r, _, _ = select.select([fd], [], [], 0.5)
                if r:
                    try:
                        buf += os.read(fd, 1024)
                    except OSError:
                        break
            time.sleep(think)
            os.write(fd, (pw + "\n").encode())
            deadline = time.time() + 20
            while time.time() < deadline:
                r, _, _ = select.select([fd], [], [], 0.5)
                if r:
                    try:
                        if not os.read(fd, 1024):
                            break
                    except OSError:
                        break
                done, _ = os.waitpid(pid, os.WNOHANG)
                if done:
                    break
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
            os.close(fd)
            time.sleep(1.0 + think / 2)

    def pool(self, sources, user, password, seconds, statements, app):
        """An application's connection pool per source: 4 connections each, reused for
        `seconds`, running `statements` in turn."""
        script = ("import psycopg2,sys,time,random\n"
                  "port,user,pw,secs,app=int(sys.argv[1]),sys.argv[2],sys.argv[3],float(sys.argv[4]),sys.argv[5]\n"
                  "stmts=sys.argv[6].split(';;')\n"
                  "conns=[psycopg2.connect(host='127.0.0.1',port=port,user=user,password=pw,dbname='appdb',"
                  "application_name=app) for _ in range(4)]\n"
                  "for c in conns: c.autocommit=True\n"
                  "end=time.time()+secs\n"
                  "i=0\n"
                  "while time.time()<end:\n"
                  "  c=conns[i%4]; i+=1\n"
                  "  with c.cursor() as cur:\n"
                  "    s=stmts[i%len(stmts)]\n"
                  "    cur.execute(s, {'id': random.randint(1, 200)} if '%(id)s' in s else None)\n"
                  "  time.sleep(0.05)\n"
                  "for c in conns: c.close()\n")
        procs = [subprocess.Popen(["/usr/bin/python3", "-c", script, str(self.port), user, password,
                                   str(seconds), app, ";;".join(statements)], env=self.env(s),
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=self.work)
                 for s in sources]
        for p in procs:
            _, err = p.communicate(timeout=seconds + 60)
            if p.returncode != 0:
                raise RuntimeError(f"pool: {err.decode()[-300:]}")


ORM = [
    "SELECT orders.id AS orders_id, orders.customer_id AS orders_customer_id, orders.total AS orders_total, "
    "orders.status AS orders_status FROM orders WHERE orders.customer_id = %(id)s ORDER BY orders.id DESC LIMIT 20",
    "SELECT customers.id AS customers_id, customers.name AS customers_name FROM customers "
    "WHERE customers.id = %(id)s",
    "UPDATE orders SET status='paid' WHERE orders.id = %(id)s",
    "SELECT count(*) AS count_1 FROM (SELECT orders.id AS orders_id FROM orders WHERE orders.status = 'open' "
    "AND 1 = 1) AS anon_1",
]

HOME_APP = {"actor": "127.0.0.10", "role": "app", "database": "appdb", "application": "orders-api",
            "every": "1h"}
SECOND_APP = {"actor": "127.0.0.11", "role": "app", "database": "appdb", "application": "orders-api",
              "every": "1h"}
OFFICE = {"actor": "127.0.0.20", "role": "alice", "database": "appdb", "application": "psql",
          "every": "workday"}
BASE_ACTORS = {
    "127.0.0.10": {"place": "cloud:AWS:eu-west-1", "benign": True, "what": "the application, home region"},
    "127.0.0.11": {"place": "cloud:AWS:us-east-1", "benign": True, "what": "the application, second region"},
    "127.0.0.20": {"place": "isp:DE", "benign": True, "what": "alice at the office"},
}


def attacker(place="isp:BR", addr="127.0.0.66", what="the attacker"):
    return {addr: {"place": place, "benign": False, "what": what}}


# The administrator's (and this recorder's) sessions over the unix socket.
LOCAL_ADMIN = {"actor": "[local]", "role": "postgres", "database": "postgres", "application": "psql",
               "every": "daily"}


def labels(kind, description, expect, actors=None, tool=None, baseline=None):
    a = dict(BASE_ACTORS)
    a.update(actors or {})
    return {"kind": kind, "tool": tool, "description": description, "actors": a,
            "baseline": (baseline if baseline is not None else [HOME_APP, SECOND_APP, OFFICE]) + [LOCAL_ADMIN],
            "expect": expect}


def bf(source="127.0.0.66", success=False, principal=None):
    e = {"alertType": "PostgreSQL_BruteForce", "source": source}
    if success:
        e["severity"] = "High"
    if principal:
        e["principal"] = principal
    return e


def harmful(source="127.0.0.66", tool=None, needs="database"):
    """hydra, medusa and nmap's pgsql-brute are told by the database of their failed logins,
    which a stderr log has only with %d in its prefix."""
    e = {"alertType": "PostgreSQL_HarmfulApplication", "source": source}
    if tool:
        e["tool"] = tool
    if needs:
        e["needs"] = needs
    return e


# log_line_prefix of real installations, for the parser's golden files (`--prefixes`).
REAL_PREFIXES = {
    "debian": "%m [%p] %q%u@%d ",
    "rhel-pgdg-default": "%m [%p] ",
    "amazon-rds": "%t:%r:%u@%d:[%p]:",
    "azure-flexible": "%t-%c-",
    "google-cloud-sql": "%m [%p]: [%l-1] db=%d,user=%u ",
    "heroku": 'sql_error_code = %e time_ms = "%m" pid="%p" proc_start_time="%s" session_id="%c" vtid="%v" '
              'tid="%x" log_line="%l" %qdatabase="%d" connection_source="%r" user="%u" application_name="%a" ',
    "pgbadger": "%t [%p]: user=%u,db=%d,app=%a,client=%h ",
    "pgbadger-line": "%t [%p]: [%l-1] user=%u,db=%d,app=%a,client=%h ",
    "patroni-spilo": "%t [%p]: [%l-1] %c %q%u@%d ",
    "debian-host": "%m [%p] %q%u@%d %h ",
    "sqlstate-app": "%m [%p] %e %q%u@%d/%a ",
    "command-tag": "%m [%p] %i %q%u@%d ",
    "epoch-everything": "%n %c %r %e [%b] %i %x %v %l %s %q%a ",
}


def record_prefixes(out):
    """One short log per real-world prefix: a login, a wrong password, an unknown role, a role
    name with a space, a bare connection, a failing statement."""
    r = Recorder(out, [])
    for name, prefix in REAL_PREFIXES.items():
        c = r.cl.psql
        r.configure({"log_filename": f"{name}.log", "log_line_prefix": prefix, "log_destination": "stderr"})
        c("SELECT pg_reload_conf()")
        time.sleep(0.5)
        c("SELECT pg_rotate_logfile()")
        time.sleep(0.5)
        r.login("127.0.0.10", "app", APP_PW, app="orders-api", sql="SELECT 1;;SELECT 1/0")
        r.login("127.0.0.66", "app", "wrong", sslmode="disable")
        r.login("127.0.0.66", "nosuch", "wrong", sslmode="disable")
        r.login("127.0.0.66", "x y", "wrong", db="x y", sslmode="disable")
        s = socket.socket()
        s.bind(("127.0.0.67", 0))
        s.connect(("127.0.0.1", r.port))
        s.close()
        time.sleep(1)
        r.configure({"log_filename": "between.log", "log_line_prefix": prefix, "log_destination": "stderr"})
        c("SELECT pg_reload_conf()")
        time.sleep(0.5)
        c("SELECT pg_rotate_logfile()")
        time.sleep(0.5)
        shutil.copyfile(os.path.join(r.cl.log_dir, f"{name}.log"), os.path.join(out, f"{name}.log"))
        with open(os.path.join(out, f"{name}.log-line-prefix"), "w") as f:
            f.write(prefix)
        print(f"{name}: ok", flush=True)
    r.cl.stop()
    shutil.rmtree(r.work, ignore_errors=True)


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    if sys.argv[1] == "--prefixes":
        out = os.path.abspath(sys.argv[2])
        os.makedirs(out, exist_ok=True)
        return record_prefixes(out)
    out = os.path.abspath(sys.argv[1])
    os.makedirs(out, exist_ok=True)
    r = Recorder(out, sys.argv[2:])
    A = "127.0.0.66"

    # ---- hydra ----
    for n, tasks, right_at in [(3, 4, None), (5, 4, None), (8, 4, 8), (12, 1, None), (9, 1, 9),
                               (40, 64, 30), (2, 1, 2)]:
        name = f"hydra-t{tasks}-{n}" + (f"-right{right_at}" if right_at else "")
        words = r.words(n, right_at)
        exp = [harmful(tool="hydra/medusa")] if n >= 3 else []
        if n >= 4 or (right_at and right_at > 4):
            exp.append(bf(success=bool(right_at), principal="app"))
        r.scenario(name, lambda w=words, t=tasks, s=bool(right_at): r.hydra(A, user="app", words=w, tasks=t, stop=s),
                   labels("attack", f"hydra, {tasks} tasks, {n} passwords on a valid role" +
                          (f", the right one {right_at}th (-f)" if right_at else ""), exp, attacker(), "hydra"))
    # Without TLS (ssl = off): no retry doubles a failure; 3 tries are below every threshold.
    for n, right_at in [(3, None), (4, None), (5, 5)]:
        name = f"hydra-nossl-t1-{n}" + (f"-right{right_at}" if right_at else "")
        exp = [harmful(tool="hydra/medusa")]
        if n >= 4:
            exp.append(bf(success=bool(right_at), principal="app"))
        r.scenario(name, lambda w=r.words(n, right_at, tag="s"), s=bool(right_at):
                   r.hydra(A, user="app", words=w, tasks=1, stop=s),
                   labels("attack", f"hydra, one task, {n} passwords, server without TLS" +
                          (f", the right one {right_at}th" if right_at else ""), exp, attacker(), "hydra"),
                   settings={"ssl": "off"})
    # Slowly: one attempt every 2.5 s (hydra -c), at a person's pace; only the number tells.
    for n in (8, 12):
        exp = [harmful(tool="hydra/medusa")] + ([bf(principal="app")] if n >= 10 else [])
        r.scenario(f"hydra-slow-{n}",
                   lambda w=r.words(n, tag="c"): r.run(["hydra", "-I", "-q", "-l", "app", "-P", w, "-t", "1", "-c",
                                                        "2.5", "-s", str(r.port), "127.0.0.1", "postgres"], A),
                   labels("attack", f"hydra, {n} passwords, one every 2.5 s", exp, attacker(), "hydra"),
                   settings={"ssl": "off"})
    # Role by role: 6 roles, 5 passwords each (below the count of a brute force, above a spray's).
    users = r.userlist(["app", "admin", "root", "test", "alice", "backup"])
    r.scenario("hydra-t4-6roles-5each", lambda: r.hydra(A, users=users, words=r.words(5), tasks=4),
               labels("attack", "hydra, 6 roles x 5 passwords, 4 tasks", [bf(), harmful()], attacker(), "hydra"))
    # A spray: one seasonal password over 8 roles.
    users8 = r.userlist(["app", "admin", "root", "test", "alice", "backup", "oracle", "sa"])
    r.scenario("hydra-spray-8roles", lambda: r.hydra(A, users=users8, password="Winter2026!", tasks=4),
               labels("attack", "hydra, one password over 8 roles", [
                   {"alertType": "PostgreSQL_PasswordSpray", "source": A}, harmful()], attacker(), "hydra"))
    # A small spray at a tool's pace (4 roles), and a slow one (6 roles, one every 3 s).
    users4 = r.userlist(["admin", "root", "test", "backup"])
    r.scenario("hydra-spray-4roles", lambda: r.hydra(A, users=users4, password="Spring2026!", tasks=2),
               labels("attack", "hydra, one password over 4 roles",
                      [{"alertType": "PostgreSQL_PasswordSpray", "source": A}, harmful()], attacker(), "hydra"))

    def slow_spray():
        for role in ["admin", "root", "test", "backup", "oracle", "report"]:
            r.login(A, role, "Autumn2026!", db="postgres", sslmode="disable")
            time.sleep(3)
    r.scenario("slow-spray-6roles", slow_spray,
               labels("attack", "one password over 6 roles, one every 3 s, from a script",
                      [{"alertType": "PostgreSQL_PasswordSpray", "source": A}], attacker()))
    # ---- medusa ----
    r.scenario("medusa-5", lambda: r.medusa(A, "app", r.words(5, tag="m")),
               labels("attack", "medusa, 5 passwords, one task", [bf(), harmful()], attacker(), "medusa"))
    r.scenario("medusa-9-right9", lambda: r.medusa(A, "app", r.words(9, 9, tag="m"), stop=True),
               labels("attack", "medusa -f, the right password 9th", [bf(success=True), harmful()], attacker(),
                      "medusa"))
    # ---- ncrack (MD5 only) ----
    r.scenario("ncrack-9-right9", lambda: r.ncrack(A, "md5user", r.words(9, 9, right=MD5_PW, tag="n")),
               labels("attack", "ncrack, the right password 9th: 8 failures in milliseconds, then a login",
                      [bf(success=True, principal="md5user")], attacker(), "ncrack"))
    r.scenario("ncrack-5", lambda: r.ncrack(A, "md5user", r.words(5, tag="n"), stop=False),
               labels("attack", "ncrack, 5 wrong passwords", [bf()], attacker(), "ncrack"))
    # ---- nmap ----
    r.scenario("nmap-sV", lambda: r.run(["nmap", "-Pn", "-sT", "-sV", "-p", str(r.port), "127.0.0.1"], A),
               labels("attack", "nmap version detection", [{"alertType": "PostgreSQL_Probe", "source": A}],
                      attacker(), "nmap"))
    users_n = r.userlist(["md5user", "admin"])
    r.scenario("nmap-pgsql-brute",
               lambda: r.run(["nmap", "-Pn", "-sT", "-sV", "-p", str(r.port), "--script", "pgsql-brute", "--script-args",
                              f"userdb={users_n},passdb={r.words(6, tag='x')},brute.firstonly=true",
                              "127.0.0.1"], A),
               labels("attack", "nmap pgsql-brute, 2 roles x 6 passwords",
                      [harmful(tool="nmap pgsql-brute"), bf()], attacker(), "nmap"))
    # ---- patator ----
    r.scenario("patator-6",
               lambda: r.run(["patator", "pgsql_login", "host=127.0.0.1", f"port={r.port}", "user=app",
                              "password=FILE0", f"0={r.words(6, tag='p')}", "-x", "ignore:code=1"], A),
               labels("attack", "patator, 6 passwords", [bf()], attacker(), "patator"))
    # ---- distributed: 6 addresses, 4 tries each, on postgres ----
    def distributed():
        # Each address tries once every 12 s or so: slow enough that no one address looks
        # like a tool; only together are they an attack.
        for k in range(4):
            for s in range(6):
                r.login(f"127.0.0.{71 + s}", "postgres", f"guess-{k}-{s}", db="postgres", sslmode="disable")
                time.sleep(2)
    dist_actors = {f"127.0.0.{71 + s}": {"place": p, "benign": False, "what": "one of a botnet"}
                   for s, p in enumerate(["isp:BR", "isp:JP", "isp:US", "isp:BR", "isp:JP", "isp:US"])}
    r.scenario("distributed-6x4", distributed,
               labels("attack", "six addresses, four passwords each, on postgres, in turns",
                      [{"alertType": "PostgreSQL_DistributedBruteForce", "principal": "postgres"}], dist_actors))
    # ---- Tor: a burst of failures from many exits, then a success from a new provider ----
    def tor_burst():
        for s in range(25):
            r.login(f"127.0.1.{s + 1}", "app", f"tor-{s}", sslmode="disable")
        time.sleep(1)
        r.login("127.0.0.90", "app", APP_PW, app="psql")
        time.sleep(1)
        r.login("127.0.0.91", "newsvc", "newsvc-pw", app="")
    tor_actors = {f"127.0.1.{s + 1}": {"place": f"tor:{s}", "benign": False, "what": "a Tor exit"}
                  for s in range(25)}
    tor_actors["127.0.0.90"] = {"place": "cloud:Oracle Cloud", "benign": False, "what": "the attacker's VPS"}
    tor_actors["127.0.0.91"] = {"place": "isp:DE", "benign": False, "what": "a role nobody used"}
    r.scenario("tor-burst-then-logins", tor_burst,
               labels("attack", "25 failed logins from 25 Tor exits, then app logs in from a new cloud provider "
                      "and a never-used role logs in",
                      [{"alertType": "PostgreSQL_SuspiciousIpAnomaly", "source": "127.0.1.1"},
                       {"alertType": "PostgreSQL_CloudProviderAnomaly", "source": "127.0.0.90"},
                       {"alertType": "PostgreSQL_PrincipalAnomaly", "source": "127.0.0.91"}], tor_actors))
    # ---- attribution: a successful brute force from a new country, then the app's own login ----
    def bf_then_app():
        r.hydra(A, user="app", words=r.words(6, 6), tasks=4, stop=True)
        time.sleep(2)
        r.login("127.0.0.10", "app", APP_PW, app="orders-api")
    r.scenario("bf-success-then-app-login", bf_then_app,
               labels("attack", "hydra finds app's password from Brazil; 2 s later the application logs in from "
                      "its usual cloud address",
                      [bf(success=True), harmful(), {"alertType": "PostgreSQL_GeoAnomaly", "source": A}],
                      attacker(), "hydra"))
    # A stolen password used from a Tor exit.
    r.scenario("tor-login", lambda: r.login("127.0.1.40", "alice", ALICE_PW, app="psql"),
               labels("attack", "alice's password used from a Tor exit",
                      [{"alertType": "PostgreSQL_SuspiciousIpAnomaly", "source": "127.0.1.40", "severity": "High"}],
                      {"127.0.1.40": {"place": "tor:40", "benign": False, "what": "a Tor exit"}}))
    # medusa with four parallel tasks, the password found late.
    r.scenario("medusa-t4-12-right11", lambda: r.medusa(A, "app", r.words(12, 11, tag="q"), tasks=4, stop=True),
               labels("attack", "medusa, 4 tasks, the right password 11th", [bf(success=True), harmful()],
                      attacker(), "medusa"))
    # ---- sqlmap ----
    def sqlmap_direct():
        r.run(["sqlmap", "--batch", "--flush-session", "--disable-coloring", "-d",
               f"postgresql://app:{APP_PW}@127.0.0.1:{r.port}/appdb", "--banner", "--current-user", "--is-dba",
               "--users", "--tables", "--output-dir", os.path.join(r.work, "sqlmap")], A, timeout=600)
    r.scenario("sqlmap-direct", sqlmap_direct,
               labels("attack", "sqlmap -d with app's stolen password, statement logging off",
                      [harmful(tool="sqlmap", needs=None)], attacker(), "sqlmap"))

    def sqlmap_app():
        port = free_port()
        dsn = f"host=127.0.0.1 port={r.port} user=app password={APP_PW} dbname=appdb"
        app = subprocess.Popen(["/usr/bin/python3", os.path.join(ROOT, "tests/support/vulnerable_app.py"),
                                str(port), dsn], env=r.env("127.0.0.10"), stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL)
        app.stdout.readline()
        try:
            subprocess.run(["sqlmap", "--batch", "--flush-session", "--dbms=PostgreSQL", "--time-sec=1",
                            "--disable-coloring", "-u", f"http://127.0.0.1:{port}/item?id=1", "--output-dir",
                            os.path.join(r.work, "sqlmap2")], env=dict(os.environ, HOME=r.work),
                           capture_output=True, timeout=900)
        finally:
            app.terminate()
            app.wait()
    for ls in ("none", "all"):
        r.scenario(f"sqlmap-webapp-log-statement-{ls}", sqlmap_app,
                   labels("attack", f"sqlmap through a vulnerable web application, log_statement = {ls}",
                          [{"alertType": "PostgreSQL_SqlInjection", "principal": "app"}],
                          {"127.0.0.10": {"place": "cloud:AWS:eu-west-1", "benign": False,
                                          "what": "the application, made to run the attacker's SQL"}}, "sqlmap"),
                   settings={"log_statement": ls})

    # ---- role names chosen by the attacker: spaces, quotes, @, commas, brackets, a newline,
    # 63 bytes, and bytes that are not UTF-8 ----
    def hostile_names():
        names = ["x y", "a@b", "o'brien", 'say "hi"', "[adm]", "c,d", "new\nline", "r" * 63,
                 "FATAL:  fake", "ünïcode"]
        for n in names:
            for k in range(3):
                r.login(A, n, f"pw{k}", db="x y" if k == 0 else "appdb", sslmode="disable")
        # A startup packet whose role and database are not UTF-8, from an address pg_hba.conf
        # rejects (so the server answers without a password exchange).
        for k in range(2):
            s = socket.socket()
            s.bind(("127.0.0.67", 0))
            s.connect(("127.0.0.1", r.port))
            body = (b"\x00\x03\x00\x00" + b"user\x00\xff\xfe r\xf6le\x00" + b"database\x00d\xe9b\x00"
                    + b"\x00")
            s.sendall(len(body + b"1234").to_bytes(4, "big") + body)
            s.recv(1000)
            s.close()
    r.scenario("hostile-names", hostile_names,
               labels("attack", "failed logins as roles named with spaces, quotes, @, commas, brackets, a "
                      "newline, 63 bytes, a severity word, non-ASCII and non-UTF-8 bytes",
                      [{"alertType": "PostgreSQL_PasswordSpray", "source": A}],
                      dict(attacker(), **attacker("isp:JP", "127.0.0.67", "the attacker's second address"))),
               prefix="%m [%p] %q%u@%d %h ")

    # ---- benign ----
    r.scenario("psql-typos", lambda: r.psql_terminal("127.0.0.20", "alice",
                                                      ["alice-Corect-7", "alice-correct-7", "Alice-Correct-7",
                                                       ALICE_PW]),
               labels("benign", "alice at a terminal: psql, three typos then the right password "
                      "(each try: a bare connection for the prompt, and libpq's TLS fallback doubles the failure)",
                      []))
    r.scenario("psql-typos-fast", lambda: r.psql_terminal("127.0.0.20", "alice",
                                                           ["x", "alice", "alice-Correct", "alice-Correct-", ALICE_PW],
                                                           think=1.2),
               labels("benign", "alice types fast: four typos in 12 s, then the right password", []))
    r.scenario("app-pools-two-regions",
               lambda: r.pool(["127.0.0.10", "127.0.0.11"], "app", APP_PW, 20, ORM, "orders-api"),
               labels("benign", "the application's pools in two cloud regions, ORM queries", []),
               settings={"log_statement": "all"})

    def dump():
        subprocess.run([os.path.join(r.cl.bin, "pg_dump"), "-h", "127.0.0.1", "-p", str(r.port), "-U", "backup",
                        "-d", "appdb", "-f", os.path.join(r.work, "dump.sql")],
                       env=r.env("127.0.0.30", PGPASSWORD="backup-pw"), check=True, capture_output=True)
    r.scenario("pg-dump-nightly", dump,
               labels("benign", "the nightly pg_dump by the backup role from its usual host", [],
                      {"127.0.0.30": {"place": "private", "benign": True, "what": "the backup host"}},
                      baseline=[HOME_APP, SECOND_APP, OFFICE,
                                {"actor": "127.0.0.30", "role": "backup", "database": "appdb",
                                 "application": "pg_dump", "every": "daily"}]),
               settings={"log_statement": "all"})

    def health():
        for _ in range(40):
            subprocess.run([os.path.join(r.cl.bin, "pg_isready"), "-h", "127.0.0.1", "-p", str(r.port)],
                           env=r.env("127.0.0.31"), capture_output=True)
            r.login("127.0.0.31", "monitor", "mon-pw", db="postgres", app="postgres_exporter",
                    sql="SELECT * FROM pg_stat_database")
            time.sleep(0.5)
    r.scenario("health-checks", health,
               labels("benign", "a monitoring host: pg_isready and an exporter's login twice a second", [],
                      {"127.0.0.31": {"place": "private", "benign": True, "what": "monitoring"}},
                      baseline=[HOME_APP, SECOND_APP, OFFICE,
                                {"actor": "127.0.0.31", "role": "monitor", "database": "postgres",
                                 "application": "postgres_exporter", "every": "1h", "bare_connects": True}]))

    def pooler():
        pb = os.path.join(r.work, "pgbouncer")
        os.makedirs(pb, exist_ok=True)
        port = free_port()
        with open(os.path.join(pb, "userlist.txt"), "w") as f:
            f.write(f'"app" "{APP_PW}"\n')
        with open(os.path.join(pb, "pgbouncer.ini"), "w") as f:
            f.write(f"[databases]\nappdb = host=127.0.0.1 port={r.port} dbname=appdb\n[pgbouncer]\n"
                    f"listen_addr = 127.0.0.1\nlisten_port = {port}\nauth_type = scram-sha-256\n"
                    f"auth_file = {pb}/userlist.txt\npool_mode = transaction\ndefault_pool_size = 4\n"
                    f"unix_socket_dir =\nlogfile = {pb}/pgbouncer.log\n")
        if os.geteuid() == 0:
            subprocess.run(["chown", "-R", "postgres", pb], check=True)
        bouncer = subprocess.Popen(as_postgres(["pgbouncer", os.path.join(pb, "pgbouncer.ini")]),
                                   env=r.env("127.0.0.40"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            time.sleep(1)
            script = ("import psycopg2,sys\nfor i in range(60):\n"
                      "  c=psycopg2.connect(host='127.0.0.1',port=int(sys.argv[1]),user='app',password=sys.argv[2],"
                      "dbname='appdb')\n  c.cursor().execute('SELECT 1')\n  c.close()\n"
                      "for i in range(3):\n  try:\n"
                      "    psycopg2.connect(host='127.0.0.1',port=int(sys.argv[1]),user='app',password='wrong',"
                      "dbname='appdb')\n  except psycopg2.OperationalError: pass\n")
            subprocess.run(["/usr/bin/python3", "-c", script, str(port), APP_PW], check=True, capture_output=True,
                           env=r.env("127.0.0.12"))
        finally:
            bouncer.terminate()
            bouncer.wait()
    r.scenario("pgbouncer-in-front", pooler,
               labels("benign", "pgbouncer in front: 60 client connections through 4 server connections", [],
                      {"127.0.0.40": {"place": "private", "benign": True, "what": "the pooler"}},
                      baseline=[{"actor": "127.0.0.40", "role": "app", "database": "appdb", "application": "",
                                 "every": "1h"}, OFFICE]))

    def failover_storm():
        # After a failover the application's pools reconnect all at once: 16 logins in a
        # second, every one right.
        procs = [subprocess.Popen(["/usr/bin/python3", "-c",
                                   "import psycopg2,sys\nc=psycopg2.connect(host='127.0.0.1',port=int(sys.argv[1]),"
                                   "user='app',password=sys.argv[2],dbname='appdb',application_name='orders-api')\n"
                                   "c.cursor().execute('SELECT 1')\nc.close()", str(r.port), APP_PW],
                                  env=r.env(src)) for src in ["127.0.0.10"] * 8 + ["127.0.0.11"] * 8]
        for p in procs:
            p.wait()
    r.scenario("failover-reconnect-storm", failover_storm,
               labels("benign", "after a failover both regions' pools reconnect at once", []))
    r.scenario("psql-typos-six", lambda: r.psql_terminal("127.0.0.20", "alice",
                                                          ["a1", "a2", "a3", "a4", "a5", "a6", ALICE_PW], think=1.5),
               labels("benign", "alice mistypes six times before the right password (12 failures with the TLS "
                      "fallback)", []))

    def stale_password():
        # A deploy with the old password: the pool's four connections fail together, and retry
        # with backoff three times before the fixed configuration logs in.
        for backoff in (1, 2, 4):
            for _ in range(4):
                r.login("127.0.0.10", "app", "the-old-password", app="orders-api")
            time.sleep(backoff)
        r.login("127.0.0.10", "app", APP_PW, app="orders-api")
    r.scenario("app-stale-password", stale_password,
               labels("benign", "the application deployed with its old password: 4 connections fail together, "
                      "three times with backoff, then the fixed deploy logs in", []))

    # ---- real ORMs, migration tools, drivers, BI and admin tools (statement logging on) ----
    orm_python = orm_env()
    orm = lambda script, *args: r.run([orm_python, os.path.join(HERE, "clients", script), "app", APP_PW, "appdb",
                                       "orders-api", *args], "127.0.0.10", timeout=600)

    def checked(res):
        if res.returncode != 0:
            raise RuntimeError(res.stderr[-500:])

    # Each twice: with log_statement, and with pgaudit alone (its entries, row counts).
    log_statement = {"log_statement": "all"}
    pgaudit = {"pgaudit.log": "read,write,role,ddl,function,misc", "pgaudit.log_rows": "on",
               "pgaudit.log_relation": "on"}

    def both(name, fn, lab):
        r.scenario(name, fn, lab, settings=log_statement)
        r.scenario(name + "-pgaudit", fn, dict(lab, description=lab["description"] + " (pgaudit)"),
                   settings=pgaudit)
    both("orm-sqlalchemy", lambda: checked(orm("orm_sqlalchemy.py")),
               labels("benign", "a SQLAlchemy 2 application: create_all, reflection, eager loads, empty IN and "
                      "NOT IN lists, UNION, CASE, server-side cursors, bulk inserts, savepoints, row locks", [],
                      tool="sqlalchemy"))
    both("migrations-alembic", lambda: checked(orm("migrations_alembic.py")),
               labels("benign", "Alembic migrations up, down and up again: tables, indexes, an enum, a data "
                      "migration, constraints, a bulk insert", [], tool="alembic"))
    both("orm-django", lambda: checked(orm("orm_django.py")),
               labels("benign", "a Django application: migrate of contenttypes, auth and an app, the ORM's "
                      "queries (Q, F, lookups, prefetch, annotate, bulk, select_for_update, cascades, raw), "
                      "migrate back to zero", [], tool="django"))
    both("orm-activerecord-prisma-style", lambda: checked(orm("tool_styles.py", "activerecord", "prisma")),
               labels("benign", "ActiveRecord's and Prisma's SQL through libpq's extended protocol: catalog "
                      "queries, WHERE 1=0 and AND 1=1, advisory locks, savepoints", []))

    def jdbc():
        classes = os.path.join(r.work, "jdbc")
        os.makedirs(classes, exist_ok=True)
        subprocess.run(["javac", "-d", classes, "-cp", JDBC_JAR, os.path.join(HERE, "clients", "JdbcHibernateStyle.java")],
                       check=True, capture_output=True)
        checked(r.run(["java", "-Djava.net.preferIPv4Stack=true", "-cp", f"{JDBC_JAR}:{classes}", "JdbcHibernateStyle",
                       f"jdbc:postgresql://127.0.0.1:{r.port}/appdb?ApplicationName=orders-api", "app", APP_PW],
                      "127.0.0.10"))
    both("jdbc-hibernate-style", jdbc,
               labels("benign", "a Java service through pgJDBC: DatabaseMetaData's catalog queries, Hibernate 6 "
                      "style prepared statements (server-side after five uses), batches, locks, savepoints", [],
                      tool="pgjdbc"))
    bi = {"actor": "127.0.0.32", "role": "app", "database": "appdb", "application": "Metabase", "every": "1h"}
    both("bi-metabase-style",
               lambda: checked(r.run([orm_python, os.path.join(HERE, "clients", "tool_styles.py"), "app", APP_PW,
                                      "appdb", "Metabase", "metabase"], "127.0.0.32")),
               labels("benign", "a BI tool's sync and questions: WHERE 1 <> 1 LIMIT 0 probes, aggregates, "
                      "2,000-row table views", [],
                      {"127.0.0.32": {"place": "private", "benign": True, "what": "the BI server"}},
                      baseline=[HOME_APP, SECOND_APP, OFFICE, bi]))
    admin_ui = dict(OFFICE, application="pgAdmin 4 - DB:appdb")
    both("pgadmin-browsing",
               lambda: checked(r.run([orm_python, os.path.join(HERE, "clients", "tool_styles.py"), "alice",
                                      ALICE_PW, "appdb", "pgAdmin 4 - DB:appdb", "pgadmin"], "127.0.0.20")),
               labels("benign", "alice browses with pgAdmin: its catalog, role and dashboard queries, the first "
                      "1,000 rows of a table", [], baseline=[HOME_APP, SECOND_APP, OFFICE, admin_ui]))

    def restore():
        archive = os.path.join(r.work, "appdb.dump")
        subprocess.run([os.path.join(r.cl.bin, "pg_dump"), "-Fc", "-h", "127.0.0.1", "-p", str(r.port), "-U",
                        "backup", "-d", "appdb", "-f", archive],
                       env=r.env("127.0.0.30", PGPASSWORD="backup-pw"), check=True, capture_output=True)
        os.chmod(archive, 0o644)
        r.cl.psql("DROP DATABASE IF EXISTS appdb_restored")
        r.cl.psql("CREATE DATABASE appdb_restored")
        subprocess.run(as_postgres([os.path.join(r.cl.bin, "pg_restore"), "-h", r.cl.work, "-p", str(r.port),
                                    "-U", "postgres", "-d", "appdb_restored", "--no-owner", archive]),
                       check=True, capture_output=True)
        r.cl.psql("DROP DATABASE appdb_restored")
    both("pg-restore", restore,
               labels("benign", "the backup host dumps (custom format), the administrator restores it into a "
                      "new database on the server itself", [],
                      {"127.0.0.30": {"place": "private", "benign": True, "what": "the backup host"}},
                      baseline=[HOME_APP, SECOND_APP, OFFICE,
                                {"actor": "127.0.0.30", "role": "backup", "database": "appdb",
                                 "application": "pg_dump", "every": "daily"}]))

    def monitoring():
        # check_postgres (through psql: the shim gives it the monitoring host's address) runs
        # every action it has; postgres_exporter (Go, which the shim cannot reach: it comes
        # from 127.0.0.1) is scraped three times.
        helps = subprocess.run(["check_postgres", "--help"], capture_output=True, text=True).stdout
        actions = [ln.split()[0] for ln in helps.split("Actions:", 1)[-1].splitlines()
                   if ln.startswith(" ") and " - " in ln]
        for a in actions:
            r.run(["check_postgres", f"--action={a}", "-H", "127.0.0.1", "-p", str(r.port), "-u", "monitor",
                   "--dbname=appdb"], "127.0.0.31", timeout=60, PGPASSWORD="mon-pw")
        exporter = subprocess.Popen(
            ["prometheus-postgres-exporter", "--web.listen-address=127.0.0.1:0"],
            env=dict(os.environ, DATA_SOURCE_NAME=f"postgresql://monitor:mon-pw@127.0.0.1:{r.port}/postgres"
                                                  "?sslmode=disable"),
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        time.sleep(2)
        # The exporter queries the server when scraped; its listening port is in its log.
        port = None
        deadline = time.time() + 10
        while port is None and time.time() < deadline:
            line = exporter.stderr.readline()
            if "address=" in line and "127.0.0.1:" in line:
                port = line.split("127.0.0.1:", 1)[1].split()[0].strip('"')
        if port:
            for _ in range(3):
                subprocess.run(["curl", "-s", "-o", "/dev/null", f"http://127.0.0.1:{port}/metrics"])
                time.sleep(1)
        exporter.terminate()
        exporter.wait(timeout=10)
        if not port:
            raise RuntimeError("postgres_exporter did not say where it listens")
    both("monitoring-check-postgres-exporter", monitoring,
         labels("benign", "monitoring: every check_postgres action as a pg_monitor role (its catalog queries, "
                "pg_ls_waldir, a UNION over pg_authid's names, permission errors) and postgres_exporter scraped",
                [], {"127.0.0.31": {"place": "private", "benign": True, "what": "monitoring"},
                     "127.0.0.1": {"place": "private", "benign": True, "what": "the exporter on the server"}},
                tool="check_postgres",
                baseline=[HOME_APP, SECOND_APP, OFFICE,
                          {"actor": "127.0.0.31", "role": "monitor", "database": "appdb",
                           "application": "psql", "every": "1h"},
                          {"actor": "127.0.0.1", "role": "monitor", "database": "postgres",
                           "application": "", "every": "1h"}]))

    r.cl.stop()
    failed = [n for n, e, _ in r.results if e]
    print(f"{len(r.results)} scenarios recorded in {out}; {len(failed)} failed: {' '.join(failed)}")
    shutil.rmtree(r.work, ignore_errors=True)


if __name__ == "__main__":
    main()
