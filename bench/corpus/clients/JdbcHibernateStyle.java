// A Java service through pgJDBC, for the benign corpus: what a JDBC tool or an ORM's schema
// validation asks of DatabaseMetaData (tables, columns, keys, indexes, types: pgJDBC's large
// catalog queries), then the statements Hibernate 6 writes (aliases like c1_0, `offset ? rows
// fetch first ? rows only`, `in (?,?,?)`, `1=0` for an empty list, sequences, batches, row
// locks, savepoints), as prepared statements that become server-side ones after five uses.
//
// usage: java -cp postgresql.jar:. JdbcHibernateStyle URL USER PASSWORD
import java.sql.*;

public class JdbcHibernateStyle {
    public static void main(String[] a) throws Exception {
        try (Connection c = DriverManager.getConnection(a[0], a[1], a[2])) {
            DatabaseMetaData md = c.getMetaData();
            drain(md.getTables(null, "public", "%", new String[] {"TABLE", "VIEW"}));
            drain(md.getColumns(null, "public", "orders", "%"));
            drain(md.getColumns(null, "public", "customers", "%"));
            drain(md.getPrimaryKeys(null, "public", "orders"));
            drain(md.getImportedKeys(null, "public", "orders"));
            drain(md.getIndexInfo(null, "public", "customers", false, true));
            drain(md.getTypeInfo());
            drain(md.getSchemas());

            try (Statement s = c.createStatement()) {
                s.execute("create table if not exists hb_audit (id bigint not null, entity varchar(64), "
                        + "at timestamp(6) with time zone, primary key (id))");
                s.execute("create sequence if not exists hb_audit_seq start with 1 increment by 50");
            }
            for (int i = 1; i <= 30; i++) {
                try (PreparedStatement p = c.prepareStatement(
                        "select c1_0.id,c1_0.email,c1_0.name from customers c1_0 where c1_0.id=?")) {
                    p.setInt(1, i);
                    drain(p.executeQuery());
                }
                try (PreparedStatement p = c.prepareStatement(
                        "select o1_0.id,o1_0.customer_id,o1_0.status,o1_0.total from orders o1_0 "
                                + "where o1_0.customer_id=? order by o1_0.id desc offset ? rows fetch first ? rows only")) {
                    p.setInt(1, i);
                    p.setInt(2, 0);
                    p.setInt(3, 20);
                    drain(p.executeQuery());
                }
            }
            try (PreparedStatement p = c.prepareStatement(
                    "select count(o1_0.id) from orders o1_0 where o1_0.status in (?,?,?)")) {
                p.setString(1, "open");
                p.setString(2, "paid");
                p.setString(3, "shipped");
                drain(p.executeQuery());
            }
            try (PreparedStatement p = c.prepareStatement(
                    "select o1_0.id,o1_0.customer_id,o1_0.status,o1_0.total from orders o1_0 where 1=0")) {
                drain(p.executeQuery());
            }
            try (PreparedStatement p = c.prepareStatement(
                    "select c1_0.id,count(o1_0.id),sum(o1_0.total) from customers c1_0 left join orders o1_0 "
                            + "on c1_0.id=o1_0.customer_id group by c1_0.id having count(o1_0.id)>? order by 3 desc")) {
                p.setInt(1, 5);
                drain(p.executeQuery());
            }

            c.setAutoCommit(false);
            long id;
            try (Statement s = c.createStatement(); ResultSet r = s.executeQuery("select nextval('hb_audit_seq')")) {
                r.next();
                id = r.getLong(1);
            }
            try (PreparedStatement p = c.prepareStatement(
                    "insert into hb_audit (at,entity,id) values (?,?,?)")) {
                for (int i = 0; i < 40; i++) {
                    p.setTimestamp(1, new Timestamp(System.currentTimeMillis()));
                    p.setString(2, "Order#" + i);
                    p.setLong(3, id + i);
                    p.addBatch();
                }
                p.executeBatch();
            }
            try (PreparedStatement p = c.prepareStatement(
                    "select o1_0.id,o1_0.status from orders o1_0 where o1_0.id=? for no key update")) {
                p.setInt(1, 42);
                drain(p.executeQuery());
            }
            Savepoint sp = c.setSavepoint();
            try (PreparedStatement p = c.prepareStatement("update orders set status=?,total=? where id=?")) {
                p.setString(1, "paid");
                p.setBigDecimal(2, new java.math.BigDecimal("42.00"));
                p.setInt(3, 42);
                p.executeUpdate();
            }
            c.rollback(sp);
            try (PreparedStatement p = c.prepareStatement("delete from hb_audit where id between ? and ?")) {
                p.setLong(1, id);
                p.setLong(2, id + 39);
                p.executeUpdate();
            }
            c.commit();
            c.setAutoCommit(true);
            try (Statement s = c.createStatement()) {
                s.execute("drop table hb_audit");
                s.execute("drop sequence hb_audit_seq");
            }
        }
    }

    static void drain(ResultSet r) throws SQLException {
        try (r) {
            while (r.next()) {
                r.getObject(1);
            }
        }
    }
}
