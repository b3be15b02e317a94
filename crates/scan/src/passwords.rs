//! Weak passwords, found offline: the stored verifier (SCRAM-SHA-256 or MD5) is compared with
//! what a short list of guesses, then the most common passwords of leaked password sets,
//! would produce. Nothing is tried against the server.

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

/// The 10,000 most common passwords of leaked password sets, most common first
/// (`common-passwords.LICENSE` says where they come from).
const COMMON: &str = include_str!("common-passwords.txt");

/// How many of them are tried against a SCRAM verifier: each guess costs the verifier's
/// iterations (4,096 by default, about a millisecond); MD5 verifiers get all of them.
const SCRAM_GUESSES: usize = 1_000;

/// The roles (with their stored verifiers) that can log in with a guess, and what the guess
/// was (`its own name`, `a common password`, `a password from leaked password lists`). Roles
/// are spread over the machine's cores.
pub fn find_weak(roles: &[(String, String)]) -> Vec<(String, String)> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(8);
    let chunk = roles.len().div_ceil(threads).max(1);
    let mut found: Vec<(usize, String, String)> = std::thread::scope(|scope| {
        let handles: Vec<_> = roles
            .chunks(chunk)
            .enumerate()
            .map(|(k, part)| {
                scope.spawn(move || {
                    part.iter()
                        .enumerate()
                        .filter_map(|(i, (role, verifier))| {
                            weakness(role, verifier).map(|w| (k * chunk + i, role.clone(), w))
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    });
    found.sort_by_key(|(i, _, _)| *i);
    found.into_iter().map(|(_, r, w)| (r, w)).collect()
}

fn weakness(role: &str, verifier: &str) -> Option<String> {
    if let Some(g) = guesses(role)
        .into_iter()
        .find(|g| matches(verifier, role, g))
    {
        return Some(if g == role {
            "its own name".into()
        } else {
            "a common password".into()
        });
    }
    let n = if verifier.starts_with("md5") {
        usize::MAX
    } else {
        SCRAM_GUESSES
    };
    COMMON
        .lines()
        .take(n)
        .any(|g| matches(verifier, role, g))
        .then(|| "a password from leaked password lists".into())
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut m = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
    m.update(data);
    m.finalize().into_bytes().to_vec()
}

/// PBKDF2-HMAC-SHA256, one 32-byte block (what SCRAM-SHA-256 uses). After the first round
/// every HMAC is over 32 bytes, so each is two SHA-256 block compressions from the key's
/// precomputed inner and outer states: thousands of guesses per role stay affordable (and a
/// debug build's tests do not crawl through generic hashing plumbing).
fn pbkdf2(password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
    let mut key = [0u8; 64];
    if password.len() > 64 {
        key[..32].copy_from_slice(&sha2::Sha256::digest(password));
    } else {
        key[..password.len()].copy_from_slice(password);
    }
    let pad = |x: u8| {
        let mut b = [0u8; 64];
        for (o, k) in b.iter_mut().zip(key) {
            *o = k ^ x;
        }
        let mut st = SHA256_IV;
        sha2::block_api::compress256(&mut st, &[b]);
        st
    };
    let (inner, outer) = (pad(0x36), pad(0x5c));
    let mut s = salt.to_vec();
    s.extend_from_slice(&1u32.to_be_bytes());
    let first = hmac(password, &s);
    let mut u = [0u8; 32];
    u.copy_from_slice(&first);
    let mut out = u;
    for _ in 1..iterations {
        u = finish_32(&outer, &finish_32(&inner, &u));
        for i in 0..32 {
            out[i] ^= u[i];
        }
    }
    out.to_vec()
}

const SHA256_IV: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];

/// SHA-256 of one 64-byte block (already compressed into `state`) followed by 32 bytes.
fn finish_32(state: &[u32; 8], data: &[u8; 32]) -> [u8; 32] {
    let mut block = [0u8; 64];
    block[..32].copy_from_slice(data);
    block[32] = 0x80;
    block[56..].copy_from_slice(&(96u64 * 8).to_be_bytes());
    let mut st = *state;
    sha2::block_api::compress256(&mut st, &[block]);
    let mut out = [0u8; 32];
    for i in 0..8 {
        let b = st[i].to_be_bytes();
        out[4 * i] = b[0];
        out[4 * i + 1] = b[1];
        out[4 * i + 2] = b[2];
        out[4 * i + 3] = b[3];
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
    fn the_fast_rounds_are_hmac_sha256() {
        // The plain definition: U_i = HMAC(P, U_{i-1}), XORed together.
        let reference = |p: &[u8], salt: &[u8], c: u32| {
            let mut s = salt.to_vec();
            s.extend_from_slice(&1u32.to_be_bytes());
            let mut u = hmac(p, &s);
            let mut out = u.clone();
            for _ in 1..c {
                u = hmac(p, &u);
                for (o, x) in out.iter_mut().zip(&u) {
                    *o ^= x;
                }
            }
            out
        };
        let long = [b'k'; 100];
        for (p, c) in [(&b"pencil"[..], 2), (&b"pencil"[..], 4096), (&long[..], 7)] {
            assert_eq!(pbkdf2(p, b"saltsalt", c), reference(p, b"saltsalt", c));
        }
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
