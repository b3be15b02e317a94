"""SQL as Rails/ActiveRecord, Prisma, Metabase and pgAdmin send it, for the benign corpus, run
through libpq with server-side parameters (the extended protocol, as those drivers use it:
`execute <unnamed>: … $1` in the log): their catalog and schema queries, `WHERE 1=0` for an
empty list, `AND 1=1` for an empty filter, `WHERE 1 <> 1 LIMIT 0` permission probes, BI
aggregates, `SELECT * … LIMIT 1000` browsing, advisory locks, savepoints.

usage: tool_styles.py USER PASSWORD DBNAME APPLICATION STYLE...   (PGHOST/PGPORT from the environment;
STYLE: activerecord, prisma, metabase, pgadmin)
"""
import os
import sys

import psycopg

user, password, dbname, app, *styles = sys.argv[1:]

ACTIVERECORD = [
    ("SELECT t.oid, t.typname FROM pg_type as t WHERE t.typname IN ('int2', 'int4', 'int8', 'oid', 'float4', "
     "'float8', 'numeric', 'bool', 'timestamp', 'timestamptz')", None),
    ("SELECT pg_try_advisory_lock(1530223472906581245)", None),
    ("SELECT a.attname, format_type(a.atttypid, a.atttypmod), pg_get_expr(d.adbin, d.adrelid), a.attnotnull, "
     "a.atttypid, a.atttypmod, c.collname, col_description(a.attrelid, a.attnum) AS comment, "
     "attidentity AS identity, attgenerated as attgenerated FROM pg_attribute a "
     "LEFT JOIN pg_attrdef d ON a.attrelid = d.adrelid AND a.attnum = d.adnum "
     "LEFT JOIN pg_type t ON a.atttypid = t.oid "
     "LEFT JOIN pg_collation c ON a.attcollation = c.oid AND a.attcollation <> t.typcollation "
     "WHERE a.attrelid = '\"orders\"'::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum", None),
    ("SELECT pg_advisory_unlock(1530223472906581245)", None),
    ('SELECT "customers".* FROM "customers" WHERE "customers"."id" = $1 LIMIT $2', (7, 1)),
    ('SELECT "orders".* FROM "orders" WHERE 1=0', None),
    ('SELECT "orders".* FROM "orders" WHERE "orders"."customer_id" IN ($1, $2, $3)', (1, 2, 3)),
    ('SELECT COUNT(*) FROM "orders" WHERE "orders"."status" = $1', ("open",)),
    ('SELECT 1 AS one FROM "customers" WHERE "customers"."email" = $1 LIMIT $2', ("c1@example.com", 1)),
    ("BEGIN", None),
    ("SAVEPOINT active_record_1", None),
    ('INSERT INTO "orders" ("customer_id", "total", "status") VALUES ($1, $2, $3) RETURNING "id"', (1, 12, "open")),
    ("RELEASE SAVEPOINT active_record_1", None),
    ('UPDATE "orders" SET "status" = $1 WHERE "orders"."id" = $2', ("paid", 2)),
    ("COMMIT", None),
    ('SELECT "customers".* FROM "customers" WHERE "customers"."name" ILIKE $1 ORDER BY "customers"."id" ASC '
     'LIMIT $2 OFFSET $3', ("%c1%", 25, 0)),
    ('SELECT "orders".* FROM "orders" WHERE "orders"."customer_id" = $1 AND ("orders"."status" != $2 '
     'OR "orders"."status" IS NULL) ORDER BY "orders"."id" DESC', (1, "cancelled")),
]

PRISMA = [
    ('SELECT "public"."customers"."id", "public"."customers"."name", "public"."customers"."email" '
     'FROM "public"."customers" WHERE ("public"."customers"."id" = $1 AND 1=1) LIMIT $2 OFFSET $3', (5, 1, 0)),
    ('SELECT "public"."orders"."id", "public"."orders"."customer_id", "public"."orders"."total", '
     '"public"."orders"."status" FROM "public"."orders" WHERE "public"."orders"."customer_id" IN ($1,$2,$3) '
     'OFFSET $4', (1, 2, 3, 0)),
    ('SELECT COUNT(*) AS "_count._all" FROM (SELECT "public"."orders"."id" FROM "public"."orders" WHERE 1=1 '
     'OFFSET $1) AS "sub"', (0,)),
    ('SELECT "public"."orders"."id" FROM "public"."orders" WHERE 1=0 OFFSET $1', (0,)),
    ('SELECT "public"."customers"."id" FROM "public"."customers" WHERE ("public"."customers"."name"::text '
     'ILIKE $1 OR "public"."customers"."email"::text ILIKE $2) OFFSET $3', ("%c2%", "%c2%", 0)),
    ('INSERT INTO "public"."customers" ("name","email") VALUES ($1,$2) RETURNING "public"."customers"."id", '
     '"public"."customers"."name", "public"."customers"."email"', ("Prisma user", "prisma@example.com")),
    ('DELETE FROM "public"."customers" WHERE ("public"."customers"."email" = $1 AND 1=1)', ("prisma@example.com",)),
]

METABASE = [
    ('SELECT TRUE AS "_" FROM "public"."orders" WHERE 1 <> 1 LIMIT 0', None),
    ('SELECT TRUE AS "_" FROM "public"."customers" WHERE 1 <> 1 LIMIT 0', None),
    ('SELECT "public"."orders"."status" AS "status", COUNT(*) AS "count" FROM "public"."orders" '
     'GROUP BY "public"."orders"."status" ORDER BY "public"."orders"."status" ASC', None),
    ('SELECT "source"."customer_id" AS "customer_id", SUM("source"."total") AS "sum" FROM (SELECT '
     '"public"."orders"."customer_id" AS "customer_id", "public"."orders"."total" AS "total" FROM '
     '"public"."orders") AS "source" GROUP BY "source"."customer_id" ORDER BY "sum" DESC, '
     '"source"."customer_id" ASC LIMIT 10', None),
    ('SELECT "public"."orders"."id" AS "id", "public"."orders"."customer_id" AS "customer_id", '
     '"public"."orders"."total" AS "total", "public"."orders"."status" AS "status" FROM "public"."orders" '
     'LIMIT 2000', None),
    ('SELECT count(*) AS "count", count(distinct "orders"."status") AS "distinct-count", '
     'SUM(CASE WHEN "orders"."status" IS NULL THEN 1 ELSE 0 END) AS "nil-count" FROM '
     '(SELECT "public"."orders"."status" FROM "public"."orders" LIMIT 10000) AS "orders"', None),
    ('SELECT CAST(date_trunc(\'month\', now()) AS date) AS "created_at", COUNT(*) AS "count" FROM '
     '"public"."orders" WHERE ("public"."orders"."total" >= 10 AND "public"."orders"."total" < 100) '
     'GROUP BY 1 ORDER BY 1 ASC', None),
    ('SELECT "public"."customers"."email" AS "email" FROM "public"."customers" LIMIT 10000', None),
]

PGADMIN = [
    ("SELECT db.oid as did, db.datname as name, ta.spcname as spcname, db.datallowconn, db.datistemplate AS "
     "is_template, pg_catalog.has_database_privilege(db.oid, 'CREATE') as cancreate, datdba as owner, "
     "descr.description FROM pg_catalog.pg_database db LEFT OUTER JOIN pg_catalog.pg_tablespace ta ON "
     "db.dattablespace = ta.oid LEFT OUTER JOIN pg_catalog.pg_shdescription descr ON (db.oid=descr.objoid AND "
     "descr.classoid='pg_database'::regclass) WHERE db.oid > 16383::OID OR db.datname IN ('postgres', 'edb') "
     "ORDER BY datname", None),
    ("SELECT roles.oid as id, roles.rolname as name, roles.rolsuper as is_superuser, CASE WHEN roles.rolsuper "
     "THEN true ELSE roles.rolcreaterole END as can_create_role, CASE WHEN roles.rolsuper THEN true ELSE "
     "roles.rolcreatedb END as can_create_db, CASE WHEN 'pg_signal_backend'=ANY(ARRAY(WITH RECURSIVE cte AS "
     "(SELECT pg_roles.oid,pg_roles.rolname FROM pg_roles WHERE pg_roles.oid = roles.oid UNION ALL SELECT "
     "m.roleid,pgr.rolname FROM cte cte_1 JOIN pg_auth_members m ON m.member = cte_1.oid JOIN pg_roles pgr ON "
     "pgr.oid = m.roleid) SELECT rolname FROM cte)) THEN True ELSE False END as can_signal_backend FROM "
     "pg_catalog.pg_roles as roles WHERE rolname = current_user", None),
    ("SELECT r.oid, r.rolname, r.rolcanlogin, r.rolsuper, pg_catalog.shobj_description(r.oid, 'pg_authid') AS "
     "description FROM pg_catalog.pg_roles r ORDER BY r.rolcanlogin, r.rolname", None),
    ("SELECT (SELECT count(*) FROM pg_catalog.pg_stat_activity WHERE datname = (SELECT datname FROM "
     "pg_catalog.pg_database WHERE oid = 5)) AS \"Total\", (SELECT count(*) FROM pg_catalog.pg_stat_activity "
     "WHERE state = 'active' AND datname = (SELECT datname FROM pg_catalog.pg_database WHERE oid = 5)) AS "
     "\"Active\", (SELECT count(*) FROM pg_catalog.pg_stat_activity WHERE state = 'idle' AND datname = (SELECT "
     "datname FROM pg_catalog.pg_database WHERE oid = 5)) AS \"Idle\"", None),
    ("SELECT pid, datname, usename, application_name, client_addr, pg_catalog.to_char(backend_start, "
     "'YYYY-MM-DD HH24:MI:SS TZ') AS backend_start, state, wait_event_type || ': ' || wait_event AS wait_event, "
     "array_to_string(pg_catalog.pg_blocking_pids(pid), ', ') AS blocking_pids, query FROM "
     "pg_catalog.pg_stat_activity ORDER BY pid", None),
    ("SELECT rel.oid, rel.relname AS name, (SELECT count(*) FROM pg_catalog.pg_trigger WHERE tgrelid=rel.oid "
     "AND tgisinternal = FALSE) AS triggercount, (SELECT count(*) FROM pg_catalog.pg_trigger WHERE "
     "tgrelid=rel.oid AND tgisinternal = FALSE AND tgenabled = 'O') AS has_enable_triggers, "
     "(CASE WHEN rel.relkind = 'p' THEN true ELSE false END) AS is_partitioned FROM pg_catalog.pg_class rel "
     "WHERE rel.relkind IN ('r','s','t','p') AND rel.relnamespace = 2200::oid AND NOT rel.relispartition "
     "ORDER BY rel.relname", None),
    ("SELECT * FROM public.orders ORDER BY id ASC LIMIT 1000", None),
    ("SELECT nsp.nspname, pg_catalog.has_schema_privilege(nsp.oid, 'CREATE') as can_create, "
     "pg_catalog.has_schema_privilege(nsp.oid, 'USAGE') as has_usage FROM pg_catalog.pg_namespace nsp "
     "WHERE nsp.nspname NOT LIKE 'pg\\_%' AND NOT (nsp.nspname = 'information_schema') ORDER BY nspname", None),
]

STYLES = {"activerecord": ACTIVERECORD, "prisma": PRISMA, "metabase": METABASE, "pgadmin": PGADMIN}

with psycopg.connect(host=os.environ["PGHOST"], port=os.environ["PGPORT"], user=user, password=password,
                     dbname=dbname, application_name=app, autocommit=True) as conn:
    for style in styles:
        for _ in range(3):
            for sql, params in STYLES[style]:
                conn.execute(sql.replace("$1", "%s").replace("$2", "%s").replace("$3", "%s").replace("$4", "%s")
                             if params else sql, params, prepare=True)
