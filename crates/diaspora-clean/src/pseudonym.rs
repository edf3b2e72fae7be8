//! Keyed pseudonyms: HMAC-SHA-256 under a secret key of at least 32 bytes.
//!
//! The same key gives the same pseudonym for the same id across runs and waves, so panels can be linked; without
//! the key a pseudonym cannot be traced back to the id. The key is never logged, printed or written to outputs:
//! [`PseudonymKey`]'s `Debug` shows only its id (a hash prefix that identifies which key was used).

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

/// A pseudonymisation key.
pub struct PseudonymKey {
    key: Vec<u8>,
}

/// Shortest accepted key, in bytes.
pub const MIN_KEY_BYTES: usize = 32;

impl PseudonymKey {
    /// Wraps key bytes; fails when shorter than [`MIN_KEY_BYTES`].
    pub fn new(key: Vec<u8>) -> Result<Self, String> {
        if key.len() < MIN_KEY_BYTES {
            return Err(format!("the pseudonymisation key must be at least {MIN_KEY_BYTES} bytes (got {})", key.len()));
        }
        Ok(Self { key })
    }

    /// Parses a key from text: 64+ hex digits are decoded, anything else is taken as raw bytes (trimmed).
    pub fn from_text(text: &str) -> Result<Self, String> {
        let t = text.trim();
        if t.len() >= 2 * MIN_KEY_BYTES && t.len().is_multiple_of(2) && t.bytes().all(|b| b.is_ascii_hexdigit()) {
            let bytes = (0..t.len()).step_by(2).map(|i| u8::from_str_radix(&t[i..i + 2], 16).unwrap_or(0)).collect();
            return Self::new(bytes);
        }
        Self::new(t.as_bytes().to_vec())
    }

    /// A public identifier of the key (first 8 bytes of SHA-256 of a domain-separated key hash), for reports.
    pub fn key_id(&self) -> String {
        let mut h = Sha256::new();
        h.update(b"diaspora key id\0");
        h.update(&self.key);
        diaspora_core::hex(&h.finalize()[..8])
    }

    /// The pseudonym of `id`: the first 16 bytes of HMAC-SHA-256(key, id), hex (32 characters).
    pub fn pseudonym(&self, id: &str) -> String {
        diaspora_core::hex(&hmac_sha256(&self.key, id.as_bytes())[..16])
    }
}

impl std::fmt::Debug for PseudonymKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PseudonymKey(id {})", self.key_id())
    }
}

/// HMAC-SHA-256 (RFC 2104 with SHA-256).
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(message);
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use diaspora_core::hex;

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    /// RFC 4231 test cases 1–4, 6 and 7 (case 5 is a truncated output).
    #[test]
    fn rfc4231_vectors() {
        let cases: &[(Vec<u8>, Vec<u8>, &str)] = &[
            (vec![0x0b; 20], b"Hi There".to_vec(), "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"),
            (
                b"Jefe".to_vec(),
                b"what do ya want for nothing?".to_vec(),
                "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
            ),
            (vec![0xaa; 20], vec![0xdd; 50], "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"),
            (
                unhex("0102030405060708090a0b0c0d0e0f10111213141516171819"),
                vec![0xcd; 50],
                "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b",
            ),
            (
                vec![0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First".to_vec(),
                "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
            ),
            (
                vec![0xaa; 131],
                b"This is a test using a larger than block-size key and a larger than block-size data. The key needs to be hashed before being used by the HMAC algorithm.".to_vec(),
                "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2",
            ),
        ];
        for (key, data, want) in cases {
            assert_eq!(hex(&hmac_sha256(key, data)), *want);
        }
    }

    #[test]
    fn keys_are_checked_and_never_shown() {
        assert!(PseudonymKey::from_text("short").is_err());
        let k = PseudonymKey::from_text(&"ab".repeat(32)).unwrap();
        assert_eq!(k.key, vec![0xab; 32]);
        let shown = format!("{k:?}");
        assert!(!shown.contains("abab") && shown.contains(&k.key_id()));
        assert_eq!(k.pseudonym("R_1"), k.pseudonym("R_1"));
        assert_ne!(k.pseudonym("R_1"), k.pseudonym("R_2"));
        let other = PseudonymKey::new(vec![1; 32]).unwrap();
        assert_ne!(k.pseudonym("R_1"), other.pseudonym("R_1"));
        assert_eq!(k.pseudonym("R_1").len(), 32);
    }
}
