"""A Django application's day, for the benign corpus: `migrate` of contenttypes, auth and an
app (generated migrations: tables, indexes, foreign keys, constraints), then the ORM as views
use it — filter/exclude with Q and F, icontains and regex lookups, select_related and
prefetch_related, annotate and aggregate, values and values_list, exists, get_or_create in an
atomic block (savepoints), select_for_update, bulk_create and bulk_update, update and delete
with cascades, order_by('?'), raw() and a cursor — and `migrate … zero` to leave nothing behind.

usage: orm_django.py USER PASSWORD DBNAME APPLICATION   (PGHOST/PGPORT from the environment)
"""
import os
import sys
import tempfile

user, password, dbname, app = sys.argv[1:5]
work = tempfile.mkdtemp(prefix="django-shop-")
os.makedirs(os.path.join(work, "shop", "migrations"))
open(os.path.join(work, "shop", "__init__.py"), "w").close()
open(os.path.join(work, "shop", "migrations", "__init__.py"), "w").close()
with open(os.path.join(work, "shop", "models.py"), "w") as f:
    f.write('''
from django.db import models


class Category(models.Model):
    name = models.CharField(max_length=80, unique=True)


class Product(models.Model):
    category = models.ForeignKey(Category, on_delete=models.CASCADE, related_name="products")
    title = models.CharField(max_length=200, db_index=True)
    price = models.DecimalField(max_digits=10, decimal_places=2)
    stock = models.IntegerField(default=0)
    active = models.BooleanField(default=True)

    class Meta:
        constraints = [models.CheckConstraint(condition=models.Q(price__gte=0), name="dj_price_gte_0")]


class Review(models.Model):
    product = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="reviews")
    stars = models.SmallIntegerField()
    text = models.TextField(blank=True)
''')
sys.path.insert(0, work)

import django  # noqa: E402
from django.conf import settings  # noqa: E402

settings.configure(
    DATABASES={"default": {"ENGINE": "django.db.backends.postgresql", "NAME": dbname, "USER": user,
                           "PASSWORD": password, "HOST": os.environ["PGHOST"], "PORT": os.environ["PGPORT"],
                           "OPTIONS": {"application_name": app}}},
    INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", "shop"],
    USE_TZ=True,
    DEFAULT_AUTO_FIELD="django.db.models.AutoField",
)
django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.db.models import Avg, Count, F, Max, Q, Sum  # noqa: E402
from django.contrib.auth.models import User  # noqa: E402
from shop.models import Category, Product, Review  # noqa: E402

call_command("makemigrations", "shop", verbosity=0)
call_command("migrate", verbosity=0)

cats = Category.objects.bulk_create([Category(name=n) for n in ("books", "games", "tools", "garden")])
products = Product.objects.bulk_create(
    [Product(category=cats[i % 4], title=f"Product {i}", price=i % 50 + 0.5, stock=i % 13) for i in range(1, 201)])
Review.objects.bulk_create([Review(product=products[i % 200], stars=i % 5 + 1, text=f"review {i}")
                            for i in range(400)])
User.objects.create_user("shopper", "shopper@example.com", "not-a-real-password")

list(Product.objects.filter(category__name="books", price__lt=10).order_by("-price")[:20])
list(Product.objects.filter(Q(title__icontains="duct 1") | Q(stock=0)).exclude(active=False))
list(Product.objects.filter(title__regex=r"^Product [0-9]+$")[:5])
list(Product.objects.filter(id__in=[1, 2, 3]))
list(Product.objects.filter(id__in=[]))  # Django sends nothing for this one
list(Product.objects.select_related("category").filter(stock__gt=F("id") / 20)[:10])
list(Product.objects.prefetch_related("reviews").filter(category__name="games")[:10])
list(Category.objects.annotate(n=Count("products"), avg=Avg("products__price")).filter(n__gt=10))
Product.objects.aggregate(total=Sum("stock"), top=Max("price"))
list(Product.objects.values("category__name").annotate(n=Count("id")).order_by("category__name"))
list(Product.objects.values_list("title", flat=True)[:10])
Product.objects.filter(title="Product 7").exists()
list(Product.objects.order_by("?")[:3])
Product.objects.filter(pk=5).first()
Product.objects.count()
with transaction.atomic():
    c, _ = Category.objects.get_or_create(name="music")
    Category.objects.get_or_create(name="books")
    p = Product.objects.select_for_update().get(pk=10)
    p.stock = F("stock") - 1
    p.save(update_fields=["stock"])
ps = list(Product.objects.filter(category=cats[0])[:20])
for p in ps:
    p.price = p.price + 1
Product.objects.bulk_update(ps, ["price"])
Product.objects.filter(active=True, stock=0).update(active=False)
Review.objects.filter(stars=1).delete()
Category.objects.filter(name="garden").delete()  # cascades to products and their reviews
list(Product.objects.raw("SELECT id, title, price, category_id, stock, active FROM shop_product WHERE price > %s",
                         [40]))
with connection.cursor() as cur:
    cur.execute("SELECT count(*) FROM shop_review WHERE stars >= %s", [4])
    cur.fetchone()
User.objects.filter(username="shopper").delete()

call_command("migrate", "shop", "zero", verbosity=0)
call_command("migrate", "auth", "zero", verbosity=0)
call_command("migrate", "contenttypes", "zero", verbosity=0)
