"""Alembic migrations, for the benign corpus: three revisions run up, down and up again —
tables with foreign keys and indexes, a column added with a server default, a data migration
(UPDATE … WHERE), a NOT NULL change, unique and check constraints, an enum type, a bulk insert.

usage: migrations_alembic.py USER PASSWORD DBNAME APPLICATION   (PGHOST/PGPORT from the environment)
"""
import os
import sys
import tempfile

from alembic import command
from alembic.config import Config

user, password, dbname, app = sys.argv[1:5]
url = f"postgresql+psycopg2://{user}:{password}@{os.environ['PGHOST']}:{os.environ['PGPORT']}/{dbname}" \
      f"?application_name={app}"

ENV = '''
from alembic import context
from sqlalchemy import create_engine
engine = create_engine(context.config.get_main_option("sqlalchemy.url"))
with engine.connect() as connection:
    context.configure(connection=connection, transaction_per_migration=True)
    with context.begin_transaction():
        context.run_migrations()
'''

REVISIONS = {
    "a1_products": '''
revision = "a1"
down_revision = None
from alembic import op
import sqlalchemy as sa

def upgrade():
    op.create_table("al_product",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("sku", sa.String(32), nullable=False),
        sa.Column("name", sa.String(200)),
        sa.Column("price", sa.Numeric(10, 2), nullable=False, server_default="0"))
    op.create_index("ix_al_product_sku", "al_product", ["sku"], unique=True)
    op.create_table("al_stock",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("product_id", sa.Integer, sa.ForeignKey("al_product.id", ondelete="CASCADE")),
        sa.Column("qty", sa.Integer, nullable=False))
    t = sa.table("al_product", sa.column("sku", sa.String), sa.column("name", sa.String),
                 sa.column("price", sa.Numeric))
    op.bulk_insert(t, [{"sku": f"SKU-{i}", "name": f"Product {i}", "price": i} for i in range(1, 51)])

def downgrade():
    op.drop_table("al_stock")
    op.drop_index("ix_al_product_sku", "al_product")
    op.drop_table("al_product")
''',
    "a2_status": '''
revision = "a2"
down_revision = "a1"
from alembic import op
import sqlalchemy as sa

status = sa.Enum("draft", "live", "retired", name="al_status")

def upgrade():
    status.create(op.get_bind(), checkfirst=True)
    op.add_column("al_product", sa.Column("status", status, server_default="draft"))
    op.execute("UPDATE al_product SET status = 'live' WHERE price > 0 AND name IS NOT NULL")
    op.alter_column("al_product", "name", nullable=False)
    op.create_check_constraint("ck_al_product_price", "al_product", "price >= 0")

def downgrade():
    op.drop_constraint("ck_al_product_price", "al_product", type_="check")
    op.alter_column("al_product", "name", nullable=True)
    op.drop_column("al_product", "status")
    status.drop(op.get_bind(), checkfirst=True)
''',
    "a3_names": '''
revision = "a3"
down_revision = "a2"
from alembic import op
import sqlalchemy as sa

def upgrade():
    op.alter_column("al_product", "name", new_column_name="title")
    op.create_unique_constraint("uq_al_stock_product", "al_stock", ["product_id"])
    op.execute("INSERT INTO al_stock (product_id, qty) SELECT id, 10 FROM al_product WHERE status = 'live'")

def downgrade():
    op.execute("DELETE FROM al_stock")
    op.drop_constraint("uq_al_stock_product", "al_stock", type_="unique")
    op.alter_column("al_product", "title", new_column_name="name")
''',
}

with tempfile.TemporaryDirectory() as d:
    os.makedirs(os.path.join(d, "versions"))
    with open(os.path.join(d, "env.py"), "w") as f:
        f.write(ENV)
    for name, body in REVISIONS.items():
        with open(os.path.join(d, "versions", f"{name}.py"), "w") as f:
            f.write(body)
    cfg = Config()
    cfg.set_main_option("script_location", d)
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    command.upgrade(cfg, "head")
    command.current(cfg)
    command.downgrade(cfg, "base")
    command.upgrade(cfg, "a2")
    command.upgrade(cfg, "head")
    command.downgrade(cfg, "base")
