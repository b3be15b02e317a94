"""A SQLAlchemy 2 application's day, for the benign corpus: schema creation and reflection,
ORM reads with eager loading of every kind, pagination, aggregates, EXISTS, UNION, CASE,
LIKE, empty and non-empty IN lists (SQLAlchemy renders an empty IN as `IN (NULL) AND (1 != 1)`),
server-side cursors, bulk inserts, updates, deletes, row locks, savepoints and text() queries.

usage: orm_sqlalchemy.py USER PASSWORD DBNAME APPLICATION   (PGHOST/PGPORT from the environment)
"""
import os
import sys
from decimal import Decimal

from sqlalchemy import (ForeignKey, MetaData, Numeric, String, Table, and_, case, create_engine, delete,
                        exists, func, literal, or_, select, text, union_all, update)
from sqlalchemy.orm import (DeclarativeBase, Mapped, Session, joinedload, mapped_column, relationship,
                            selectinload, subqueryload)

user, password, dbname, app = sys.argv[1:5]
url = f"postgresql+psycopg2://{user}:{password}@{os.environ['PGHOST']}:{os.environ['PGPORT']}/{dbname}"
engine = create_engine(url, connect_args={"application_name": app}, pool_size=2)


class Base(DeclarativeBase):
    pass


class Customer(Base):
    __tablename__ = "sa_customer"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(80))
    email: Mapped[str | None] = mapped_column(String(120), unique=True)
    region: Mapped[str] = mapped_column(String(8), default="eu")
    orders: Mapped[list["Order"]] = relationship(back_populates="customer", cascade="all, delete-orphan")


class Order(Base):
    __tablename__ = "sa_order"
    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("sa_customer.id"), index=True)
    total: Mapped[Decimal] = mapped_column(Numeric(10, 2))
    status: Mapped[str] = mapped_column(String(16), default="open")
    customer: Mapped[Customer] = relationship(back_populates="orders")
    lines: Mapped[list["Line"]] = relationship(cascade="all, delete-orphan")


class Line(Base):
    __tablename__ = "sa_line"
    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("sa_order.id"))
    sku: Mapped[str] = mapped_column(String(32))
    qty: Mapped[int]


Base.metadata.drop_all(engine)
Base.metadata.create_all(engine)
MetaData().reflect(engine, only=["sa_customer", "sa_order"])

with Session(engine) as s:
    customers = [Customer(name=f"Customer {i}", email=f"c{i}@example.com", region=("eu", "us")[i % 2])
                 for i in range(1, 121)]
    for i, c in enumerate(customers, 1):
        c.orders = [Order(total=Decimal(10 * j + i % 7), status=("open", "paid", "shipped")[j % 3],
                          lines=[Line(sku=f"SKU-{i}-{j}-{k}", qty=k + 1) for k in range(2)])
                    for j in range(3)]
    s.add_all(customers)
    s.commit()

with Session(engine) as s:
    s.get(Customer, 5)
    s.scalars(select(Customer).where(Customer.id.in_([]))).all()
    s.scalars(select(Customer).where(Customer.id.not_in([]))).all()
    s.scalars(select(Customer).where(Customer.id.in_([1, 2, 3]), Customer.region == "eu")).all()
    s.scalars(select(Customer).options(selectinload(Customer.orders)).limit(10)).all()
    s.scalars(select(Customer).options(joinedload(Customer.orders)).where(Customer.id < 6)).unique().all()
    s.scalars(select(Order).options(subqueryload(Order.lines)).where(Order.status == "open").limit(5)).all()
    s.scalars(select(Customer).order_by(Customer.name).limit(20).offset(40)).all()
    s.execute(select(Customer.region, func.count(Order.id), func.sum(Order.total))
              .join(Order).group_by(Customer.region).having(func.count(Order.id) > 1)).all()
    s.scalars(select(Customer).where(exists().where(and_(Order.customer_id == Customer.id,
                                                         Order.status == "paid")))).all()
    s.execute(union_all(select(Customer.id, literal("customer").label("kind")).where(Customer.id < 3),
                        select(Order.id, literal("order")).where(Order.id < 3))).all()
    s.execute(select(Order.id, case((Order.total > 20, "big"), else_="small").label("size"))
              .where(or_(Order.status == "open", Order.status == "paid")).limit(10)).all()
    s.scalars(select(Customer).where(Customer.name.ilike("%stomer 1%"))).all()
    s.scalars(select(Customer).where(Customer.email.contains("@example"), Customer.name.startswith("Cus"))).all()
    s.scalars(select(Customer).where(and_(True, Customer.id > 100))).all()
    s.scalars(select(Customer).where(Customer.email.is_(None))).all()
    s.execute(select(func.coalesce(func.max(Order.total), 0), func.now())).all()
    for _ in s.scalars(select(Line).execution_options(yield_per=50)):
        pass
    s.execute(text("SELECT id, name FROM sa_customer WHERE region = :r AND id BETWEEN :a AND :b"),
              {"r": "us", "a": 1, "b": 50}).all()
    c = s.scalars(select(Customer).where(Customer.id == 7).with_for_update()).one()
    c.name = "Customer seven"
    with s.begin_nested():
        s.add(Customer(name="Temp", email="temp@example.com"))
    s.execute(update(Order).where(Order.status == "open", Order.total < 5).values(status="cancelled"))
    s.execute(delete(Line).where(Line.qty > 2))
    s.commit()

with Session(engine) as s:
    victim = s.get(Customer, 3)
    s.delete(victim)
    s.commit()

Base.metadata.drop_all(engine)
