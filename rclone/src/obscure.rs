//! rclone's `obscure`: how rclone expects password-type options, in its
//! config file and in `RCLONE_CONFIG_*` variables alike.
//!
//! AES-256-CTR under a key published in rclone's source (`lib/obscure`), a
//! 16-byte IV in front, base64 URL alphabet without padding. This is no
//! protection (anyone can reveal it); it only lets rclone accept the value.
//!
//! rclone draws the IV at random; berth derives it from the value, so one
//! value always obscures the same way. rclone names a remote's VFS cache
//! directory after a hash of the remote's options as given: with a random
//! IV, every new `rclone mount` child of the same backend would look for its
//! cache, and the uploads an earlier child left queued, in a new directory.

use aes::cipher::{KeyIvInit, StreamCipher};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sha2::{Digest, Sha256};

/// The fixed key of rclone's `lib/obscure`.
const KEY: [u8; 32] = [
    0x9c, 0x93, 0x5b, 0x48, 0x73, 0x0a, 0x55, 0x4d, 0x6b, 0xfd, 0x7c, 0x63, 0xc8, 0x86, 0xa9, 0x2b,
    0xd3, 0x90, 0x19, 0x8e, 0xb8, 0x12, 0x8a, 0xfb, 0xf4, 0xde, 0x16, 0x2b, 0x8b, 0x95, 0xf6, 0x38,
];

const IV_LEN: usize = 16;

/// Go's `cipher.NewCTR` increments the whole 16-byte block, big-endian.
type Ctr = ctr::Ctr128BE<aes::Aes256>;

/// Encrypts (or decrypts: CTR is symmetric) `data` in place under `iv`.
fn crypt(data: &mut [u8], iv: &[u8; IV_LEN]) {
    Ctr::new(&KEY.into(), iv.into()).apply_keystream(data);
}

/// `plain` as `rclone obscure` would print it with the IV derived from it.
pub(crate) fn obscure(plain: &str) -> String {
    let digest = Sha256::new()
        .chain_update(b"berth rclone obscure IV\0")
        .chain_update(plain.as_bytes())
        .finalize();
    let iv: [u8; IV_LEN] = digest[..IV_LEN].try_into().expect("a SHA-256 has 32 bytes");
    let mut out = Vec::with_capacity(IV_LEN + plain.len());
    out.extend_from_slice(&iv);
    out.extend_from_slice(plain.as_bytes());
    crypt(&mut out[IV_LEN..], &iv);
    URL_SAFE_NO_PAD.encode(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `rclone reveal` does, to check our output and rclone's.
    fn reveal(obscured: &str) -> String {
        let mut bytes = URL_SAFE_NO_PAD.decode(obscured).unwrap();
        let iv: [u8; IV_LEN] = bytes[..IV_LEN].try_into().unwrap();
        crypt(&mut bytes[IV_LEN..], &iv);
        String::from_utf8(bytes.split_off(IV_LEN)).unwrap()
    }

    #[test]
    fn reveals_what_rclone_obscured() {
        // `echo -n hunter2 | rclone obscure -` with rclone v1.75.2.
        assert_eq!(reveal("mg2WS4giUkWJ_3zLtbwFGelFGvE9udQ"), "hunter2");
    }

    #[test]
    fn round_trips_the_same_way_each_time() {
        for plain in ["", "hunter2", "p@ss wörd/+=?&%", &"x".repeat(1000)] {
            let a = obscure(plain);
            assert_eq!(a, obscure(plain), "the IV comes from the value");
            assert_ne!(a, obscure(&format!("{plain}.")));
            assert!(a
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
            assert_eq!(reveal(&a), plain);
        }
    }
}
