//! The content hashes berth computes itself, named and formatted as rclone
//! does (lowercase hex; crc32 as 8 hex digits, big-endian).

use md5::Md5;
use sha1::Sha1;
use sha2::{Digest, Sha256, Sha512};
use std::fmt;

/// A hash type berth can compute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HashType {
    /// MD5.
    Md5,
    /// SHA-1.
    Sha1,
    /// SHA-256.
    Sha256,
    /// SHA-512.
    Sha512,
    /// CRC-32 (IEEE).
    Crc32,
}

impl HashType {
    /// Every supported type.
    pub const ALL: [HashType; 5] = [
        HashType::Md5,
        HashType::Sha1,
        HashType::Sha256,
        HashType::Sha512,
        HashType::Crc32,
    ];

    /// rclone's name of the type.
    pub fn name(self) -> &'static str {
        match self {
            HashType::Md5 => "md5",
            HashType::Sha1 => "sha1",
            HashType::Sha256 => "sha256",
            HashType::Sha512 => "sha512",
            HashType::Crc32 => "crc32",
        }
    }

    /// The type named `name` (case-insensitive), if berth computes it.
    pub fn parse(name: &str) -> Option<HashType> {
        Self::ALL
            .into_iter()
            .find(|t| t.name().eq_ignore_ascii_case(name.trim()))
    }
}

impl fmt::Display for HashType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One running hash.
#[derive(Clone)]
enum State {
    Md5(Md5),
    Sha1(Sha1),
    Sha256(Sha256),
    Sha512(Sha512),
    Crc32(crc32fast::Hasher),
}

impl State {
    fn new(kind: HashType) -> State {
        match kind {
            HashType::Md5 => State::Md5(Md5::new()),
            HashType::Sha1 => State::Sha1(Sha1::new()),
            HashType::Sha256 => State::Sha256(Sha256::new()),
            HashType::Sha512 => State::Sha512(Sha512::new()),
            HashType::Crc32 => State::Crc32(crc32fast::Hasher::new()),
        }
    }

    fn update(&mut self, data: &[u8]) {
        match self {
            State::Md5(h) => h.update(data),
            State::Sha1(h) => h.update(data),
            State::Sha256(h) => h.update(data),
            State::Sha512(h) => h.update(data),
            State::Crc32(h) => h.update(data),
        }
    }

    fn finish(self) -> String {
        match self {
            State::Md5(h) => hex::encode(h.finalize()),
            State::Sha1(h) => hex::encode(h.finalize()),
            State::Sha256(h) => hex::encode(h.finalize()),
            State::Sha512(h) => hex::encode(h.finalize()),
            State::Crc32(h) => format!("{:08x}", h.finalize()),
        }
    }
}

/// Several hashes of one byte stream, computed in one pass.
#[derive(Clone)]
pub struct MultiHasher {
    states: Vec<(HashType, State)>,
    bytes: u64,
}

impl MultiHasher {
    /// Hashes of each of `types`.
    pub fn new(types: &[HashType]) -> MultiHasher {
        MultiHasher {
            states: types.iter().map(|&t| (t, State::new(t))).collect(),
            bytes: 0,
        }
    }

    /// Feeds `data`.
    pub fn update(&mut self, data: &[u8]) {
        self.bytes += data.len() as u64;
        for (_, state) in &mut self.states {
            state.update(data);
        }
    }

    /// How many bytes were fed.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The hex digests, in the order the types were given.
    pub fn finish(self) -> Vec<(HashType, String)> {
        self.states
            .into_iter()
            .map(|(t, s)| (t, s.finish()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_digests() {
        let mut h = MultiHasher::new(&HashType::ALL);
        h.update(b"hello\n");
        assert_eq!(h.bytes(), 6);
        let got: Vec<(String, String)> = h
            .finish()
            .into_iter()
            .map(|(t, v)| (t.to_string(), v))
            .collect();
        let want = [
            ("md5", "b1946ac92492d2347c6235b4d2611184"),
            ("sha1", "f572d396fae9206628714fb2ce00f72e94f2258f"),
            (
                "sha256",
                "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03",
            ),
            (
                "sha512",
                "e7c22b994c59d9cf2b48e549b1e24666636045930d3da7c1acb299d1c3b7f931f94aae41edda2c2b207a36e10f8bcb8d45223e54878f5b316e7ce3b6bc019629",
            ),
            ("crc32", "363a3020"),
        ];
        for ((t, v), (wt, wv)) in got.iter().zip(want) {
            assert_eq!((t.as_str(), v.as_str()), (wt, wv));
            assert_eq!(HashType::parse(t).unwrap().name(), t);
        }
        assert_eq!(HashType::parse(" SHA256 "), Some(HashType::Sha256));
        assert_eq!(HashType::parse("blake3"), None);
    }
}
