//! Random values the service generates: passwords, API keys, HMAC keys, ids and
//! PEM-shaped placeholders.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rand::Rng as _;

const LOWER: &[u8] = b"abcdefghijklmnopqrstuvwxyz";
const UPPER: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ";
const DIGITS: &[u8] = b"0123456789";
const SYMBOLS: &[u8] = b"!@#$%^&*()-_=+[]{}<>?";
const API_KEY_ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_";

/// Which character classes a generated password uses (lower case is always used).
#[derive(Debug, Clone, Copy)]
pub(crate) struct PasswordPolicy {
    pub(crate) length: usize,
    pub(crate) digits: bool,
    pub(crate) symbols: bool,
    pub(crate) uppercase: bool,
}

impl Default for PasswordPolicy {
    /// The service default: 32 characters of every class (reference 1.11).
    fn default() -> Self {
        Self { length: 32, digits: true, symbols: true, uppercase: true }
    }
}

/// A random password following `policy`, with at least one character of each class used.
pub(crate) fn password(policy: PasswordPolicy) -> String {
    let mut classes: Vec<&[u8]> = vec![LOWER];
    for (wanted, class) in [(policy.uppercase, UPPER), (policy.digits, DIGITS), (policy.symbols, SYMBOLS)] {
        if wanted {
            classes.push(class);
        }
    }
    let mut rng = rand::rng();
    let mut chars: Vec<u8> = classes.iter().map(|class| class[rng.random_range(0..class.len())]).collect();
    let all: Vec<u8> = classes.concat();
    while chars.len() < policy.length.max(classes.len()) {
        chars.push(all[rng.random_range(0..all.len())]);
    }
    for i in (1..chars.len()).rev() {
        chars.swap(i, rng.random_range(0..=i));
    }
    String::from_utf8(chars).expect("ASCII alphabet")
}

/// A 44-character IAM API key.
pub(crate) fn api_key() -> String {
    from_alphabet(API_KEY_ALPHABET, 44)
}

/// `n` random lowercase hex characters.
pub(crate) fn hex(n: usize) -> String {
    from_alphabet(b"0123456789abcdef", n)
}

/// A random lowercase UUID.
pub(crate) fn uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// A certificate serial number in the colon-separated form the service shows.
pub(crate) fn serial_number() -> String {
    let hex = hex(32);
    hex.as_bytes()
        .chunks(2)
        .map(|pair| std::str::from_utf8(pair).expect("hex is ASCII"))
        .collect::<Vec<_>>()
        .join(":")
}

/// A PEM-shaped placeholder (random base64 content, not a parseable certificate or key).
pub(crate) fn pem(label: &str) -> String {
    let mut bytes = [0u8; 48];
    rand::rng().fill(&mut bytes);
    format!("-----BEGIN {label}-----\n{}\n-----END {label}-----", STANDARD.encode(bytes))
}

fn from_alphabet(alphabet: &[u8], n: usize) -> String {
    let mut rng = rand::rng();
    (0..n).map(|_| char::from(alphabet[rng.random_range(0..alphabet.len())])).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_has_every_requested_class() {
        let password = password(PasswordPolicy::default());
        assert_eq!(password.len(), 32);
        for class in [LOWER, UPPER, DIGITS, SYMBOLS] {
            assert!(password.bytes().any(|b| class.contains(&b)), "{class:?}");
        }
        let plain =
            super::password(PasswordPolicy { length: 12, digits: false, symbols: false, uppercase: false });
        assert_eq!(plain.len(), 12);
        assert!(plain.bytes().all(|b| LOWER.contains(&b)));
    }

    #[test]
    fn shapes() {
        assert_eq!(api_key().len(), 44);
        assert!(hex(48).bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(serial_number().split(':').count(), 16);
        assert!(pem("CERTIFICATE").starts_with("-----BEGIN CERTIFICATE-----\n"));
    }
}
