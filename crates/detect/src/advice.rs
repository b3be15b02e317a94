//! The commands that alerts' advice carries: SQL and pg_hba.conf lines. Role names come
//! from whoever connects and host names from whoever owns the reverse DNS, so every value
//! is quoted for the text it goes into; detectors build such commands only here.

use model::sql::{quote_ident, quote_literal};
use std::net::IpAddr;

/// The pg_hba.conf line that rejects `source` (an address, or a host name when the server
/// logs host names), or `None` when no line can name it safely.
pub fn hba_reject(source: &str) -> Option<String> {
    match source.parse::<IpAddr>() {
        Ok(IpAddr::V4(ip)) => Some(format!("host all all {ip}/32 reject")),
        Ok(IpAddr::V6(ip)) => Some(format!("host all all {ip}/128 reject")),
        // pg_hba.conf has no escape inside quotes: only a name made of a host name's
        // characters is written out.
        Err(_) if is_host_name(source) => Some(format!("host all all \"{source}\" reject")),
        Err(_) => None,
    }
}

fn is_host_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
        && s.chars().any(|c| c.is_ascii_alphabetic())
}

/// "block it at the firewall or with a pg_hba.conf line: host all all … reject", or the
/// firewall alone when no line can be given.
pub fn block_advice(source: &str) -> String {
    match hba_reject(source) {
        Some(line) => {
            format!("block it at the firewall or with a pg_hba.conf line before the others: {line}")
        }
        None => "block it at the firewall".into(),
    }
}

/// SQL that ends the sessions from `source`.
pub fn terminate_from(source: &str) -> String {
    let filter = match source.parse::<IpAddr>() {
        Ok(ip) => format!("client_addr = '{ip}'"),
        Err(_) => format!("client_hostname = {}", quote_literal(source)),
    };
    format!("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE {filter};")
}

/// SQL that ends the sessions of `role`.
pub fn terminate_role(role: &str) -> String {
    format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = {};",
        quote_literal(role)
    )
}

/// `ALTER ROLE <role> <what>`, the role quoted.
pub fn alter_role(role: &str, what: &str) -> String {
    format!("ALTER ROLE {} {what}", quote_ident(role))
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::sql::{tokens, Token};

    #[test]
    fn addresses_get_their_own_prefix_length() {
        assert_eq!(
            hba_reject("203.0.113.7").unwrap(),
            "host all all 203.0.113.7/32 reject"
        );
        // A /32 of IPv6 would reject a whole provider.
        assert_eq!(
            hba_reject("2001:db8::7").unwrap(),
            "host all all 2001:db8::7/128 reject"
        );
        assert_eq!(
            hba_reject("scanner.example.net").unwrap(),
            "host all all \"scanner.example.net\" reject"
        );
        assert_eq!(hba_reject("evil\" all all trust #"), None);
        assert_eq!(hba_reject("[local]"), None);
    }

    #[test]
    fn hostile_names_stay_one_value() {
        let role = "ops' OR usename <> '";
        let t = tokens(&terminate_role(role));
        assert_eq!(
            t.iter().filter(|t| matches!(t, Token::Str(_))).count(),
            1,
            "{t:?}"
        );
        assert!(t.contains(&Token::Str(role.into())));
        assert!(!t.contains(&Token::Word("OR".into())));
        let t = tokens(&alter_role(role, "NOLOGIN"));
        assert_eq!(
            t,
            vec![
                Token::Word("ALTER".into()),
                Token::Word("ROLE".into()),
                Token::Ident(role.into()),
                Token::Word("NOLOGIN".into())
            ]
        );
        let host = "x' OR true --";
        let t = tokens(&terminate_from(host));
        assert!(t.contains(&Token::Str(host.into())), "{t:?}");
        assert!(!t.contains(&Token::Word("TRUE".into())));
    }
}
