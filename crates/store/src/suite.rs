//! The store's scenarios run on both stores, as the same code serves both: each on a SQLite
//! file of its own (one test each), and all of a module's on one real PostgreSQL cluster,
//! each in a database of its own. A module lists its scenarios with `on_each_store!`.

use crate::Store;

/// A test per scenario on SQLite, and one running them all on PostgreSQL.
macro_rules! on_each_store {
    ($($name:ident),* $(,)?) => {
        mod on_sqlite {
            $(
                #[test]
                fn $name() {
                    let (_d, s) = crate::test_support::temp_store();
                    super::$name(&s);
                }
            )*
        }

        #[test]
        fn on_postgresql() {
            let cl = testkit::Cluster::start(Default::default());
            $( crate::suite::on_postgresql(&cl, stringify!($name), $name); )*
        }
    };
}
pub(crate) use on_each_store;

/// Runs `scenario` on a new database of `cl`, through the central store's own connection.
pub(crate) fn on_postgresql(cl: &testkit::Cluster, name: &str, scenario: fn(&Store)) {
    cl.psql(&format!("CREATE DATABASE {name}"));
    let url = format!(
        "postgres://postgres:{}@127.0.0.1:{}/{name}?sslmode=disable",
        testkit::SUPERUSER_PASSWORD,
        cl.port
    );
    let s = Store::connect(&url, None).unwrap_or_else(|e| panic!("{name}: {e}"));
    // Said before it runs, so a failure below is known to be PostgreSQL's.
    eprintln!("on PostgreSQL: {name}");
    scenario(&s);
}
