//! Weak passwords, found offline: the stored verifier (SCRAM-SHA-256 or MD5) is compared with
//! what a short list of guesses would produce. Nothing is tried against the server.

use hmac::{KeyInit, Mac};
use sha2::Digest;

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// What a careless administrator sets: the role's name and the usual suspects.
pub fn guesses(role: &str) -> Vec<String> {
    let mut v = vec![role.to_string(), format!("{role}123"), role.to_uppercase()];
    for g in [
        "postgres",
        "password",
        "Password1",
        "123456",
        "12345678",
        "admin",
        "changeme",
        "secret",
        "letmein",
        "qwerty",
        "welcome",
        "test",
        "root",
        "pass",
        "default",
    ] {
        v.push(g.to_string());
    }
    v.sort();
    v.dedup();
    v
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut m = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
    m.update(data);
    m.finalize().into_bytes().to_vec()
}

/// PBKDF2-HMAC-SHA256, one 32-byte block (what SCRAM-SHA-256 uses).
fn pbkdf2(password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
    let mut s = salt.to_vec();
    s.extend_from_slice(&1u32.to_be_bytes());
    let mut u = hmac(password, &s);
    let mut out = u.clone();
    for _ in 1..iterations {
        u = hmac(password, &u);
        for (o, x) in out.iter_mut().zip(&u) {
            *o ^= x;
        }
    }
    out
}

/// Whether `password` matches a stored verifier: `SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>`
/// or `md5<hex of md5(password || role)>`. Unknown formats never match.
pub fn matches(verifier: &str, role: &str, password: &str) -> bool {
    if let Some(hex) = verifier.strip_prefix("md5") {
        use md5::Digest as _;
        let d = md5::Md5::digest(format!("{password}{role}").as_bytes());
        return hex.eq_ignore_ascii_case(&hex::encode(d));
    }
    let Some(rest) = verifier.strip_prefix("SCRAM-SHA-256$") else {
        return false;
    };
    let Some((params, keys)) = rest.split_once('$') else {
        return false;
    };
    let (Some((iter, salt)), Some((stored, _server))) =
        (params.split_once(':'), keys.split_once(':'))
    else {
        return false;
    };
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let (Ok(iter), Ok(salt), Ok(stored)) =
        (iter.parse::<u32>(), b64.decode(salt), b64.decode(stored))
    else {
        return false;
    };
    if iter == 0 || iter > 1_000_000 {
        return false;
    }
    // PostgreSQL prepares passwords with SASLprep; the guesses here are ASCII, where it is the
    // identity.
    let salted = pbkdf2(password.as_bytes(), &salt, iter);
    let client_key = hmac(&salted, b"Client Key");
    let stored_key = sha2::Sha256::digest(&client_key);
    stored_key.as_slice() == stored.as_slice()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pbkdf2_is_rfc_7914s_sha256_vector() {
        // RFC 7914 §11: P="passwd", S="salt", c=1, first 32 bytes.
        assert_eq!(
            hex::encode(pbkdf2(b"passwd", b"salt", 1)),
            "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc"
        );
    }

    #[test]
    fn md5_verifiers_compare_with_the_role_as_salt() {
        // md5('secret' || 'app')
        let v = format!("md5{}", {
            use md5::Digest as _;
            hex::encode(md5::Md5::digest(b"secretapp"))
        });
        assert!(matches(&v, "app", "secret"));
        assert!(!matches(&v, "app", "other"));
        assert!(!matches("plain", "app", "plain"));
    }
}
