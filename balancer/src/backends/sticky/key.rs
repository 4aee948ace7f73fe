//! The sticky cookie's key and the keyed hash that turns a backend's address into the opaque tag
//! the cookie carries: HMAC-SHA-256 (RFC 2104) of the address, truncated to 128 bits. Without the
//! key nobody can tell which address a tag stands for, nor make the tag of a chosen address.
//!
//! The key is, with `secret`, derived from it (SHA-256 of a fixed label and the secret), so every
//! balancer process given the same secret, and every restart, makes the same tags; without one it
//! is random per process, drawn once and kept across reloads: a restart or a second process then
//! sees old cookies as stale and re-pins each client once (a fresh pick, the cookie replaced).

use std::sync::OnceLock;

use sha2::{Digest, Sha256};

/// A 256-bit HMAC key.
pub type Key = [u8; 32];

const BLOCK: usize = 64;

/// The key for `secret`, or this process's random one.
pub fn key(secret: Option<&str>) -> Key {
    match secret {
        Some(secret) => {
            let mut h = Sha256::new();
            h.update(b"balancer sticky cookie key v1\0");
            h.update(secret.as_bytes());
            h.finalize().into()
        }
        None => *process_key(),
    }
}

fn process_key() -> &'static Key {
    static KEY: OnceLock<Key> = OnceLock::new();
    KEY.get_or_init(rand::random)
}

/// The first 128 bits of HMAC-SHA-256(`key`, `message`).
pub fn tag(key: &Key, message: &[u8]) -> u128 {
    let mut inner_pad = [0x36u8; BLOCK];
    let mut outer_pad = [0x5cu8; BLOCK];
    for (i, k) in key.iter().enumerate() {
        inner_pad[i] ^= k;
        outer_pad[i] ^= k;
    }
    let inner = Sha256::new()
        .chain_update(inner_pad)
        .chain_update(message)
        .finalize();
    let outer = Sha256::new()
        .chain_update(outer_pad)
        .chain_update(inner)
        .finalize();
    let mut first = [0u8; 16];
    first.copy_from_slice(&outer[..16]);
    u128::from_be_bytes(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_sha256_matches_rfc_4231() {
        // RFC 4231 test case 2 uses a 4-byte key; padded with zeros to 32 bytes it is the same
        // HMAC key (keys shorter than the block are zero-padded).
        let mut key = [0u8; 32];
        key[..4].copy_from_slice(b"Jefe");
        let t = tag(&key, b"what do ya want for nothing?");
        assert_eq!(format!("{t:032x}"), "5bdcc146bf60754e6a042426089575c7");
    }

    #[test]
    fn a_secret_gives_the_same_key_everywhere_and_none_a_random_one() {
        assert_eq!(
            key(Some("s3cret-s3cret-s3cret")),
            key(Some("s3cret-s3cret-s3cret"))
        );
        assert_ne!(
            key(Some("s3cret-s3cret-s3cret")),
            key(Some("other-other-other!"))
        );
        assert_eq!(key(None), key(None), "one per process");
        assert_ne!(key(None), key(Some("s3cret-s3cret-s3cret")));
    }
}
