// Logs in with pgJDBC (the Debian libpostgresql-jdbc-java driver) and prints the session's
// application_name; for the proxy's fingerprint test. usage: java -cp postgresql.jar
// JdbcProbe.java PORT PASSWORD
import java.sql.*;

public class JdbcProbe {
    public static void main(String[] a) throws Exception {
        String url = "jdbc:postgresql://127.0.0.1:" + a[0] + "/appdb";
        try (Connection c = DriverManager.getConnection(url, "app", a[1]);
             ResultSet r = c.createStatement().executeQuery("SELECT 'jdbc ok'")) {
            r.next();
            System.out.println(r.getString(1));
        }
    }
}
