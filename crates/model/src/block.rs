//! Blocks and digests: the unit of transfer and the way source and target prove
//! they hold the same bytes without reading everything twice.
//!
//! A disk's digest follows the EBS "LINEAR" rule: SHA-256 over the SHA-256 of
//! each non-zero block, in block order. Zero blocks are never sent, so they do
//! not take part; the list of block indices is compared separately.

use crate::units::BlockIndex;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use std::fmt;

/// SHA-256 of one block's bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct BlockDigest(pub [u8; 32]);

impl BlockDigest {
    pub fn of(data: &[u8]) -> BlockDigest {
        BlockDigest(Sha256::digest(data).into())
    }

    pub fn to_hex(self) -> String {
        to_hex(&self.0)
    }

    pub fn from_hex(text: &str) -> Option<BlockDigest> {
        from_hex(text).map(BlockDigest)
    }
}

impl fmt::Debug for BlockDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BlockDigest({})", &self.to_hex()[..12])
    }
}

impl Serialize for BlockDigest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for BlockDigest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        BlockDigest::from_hex(&text)
            .ok_or_else(|| serde::de::Error::custom("expected 64 hex digits"))
    }
}

/// Whole-disk digest (LINEAR rule) as hex, plus how many blocks took part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskDigest {
    /// Checked on reading (64 hex digits): reports and checks show a prefix
    /// of it, and a journal may have been damaged or edited.
    #[serde(deserialize_with = "hex_sha256")]
    pub linear_sha256: String,
    pub blocks: u64,
}

/// Builds a [`DiskDigest`] from per-block digests given in any order.
#[derive(Debug, Default, Clone)]
pub struct DigestBuilder {
    blocks: std::collections::BTreeMap<BlockIndex, BlockDigest>,
}

impl DigestBuilder {
    pub fn insert(&mut self, index: BlockIndex, digest: BlockDigest) {
        self.blocks.insert(index, digest);
    }

    pub fn contains(&self, index: BlockIndex) -> bool {
        self.blocks.contains_key(&index)
    }

    pub fn len(&self) -> usize {
        self.blocks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }

    pub fn blocks(&self) -> &std::collections::BTreeMap<BlockIndex, BlockDigest> {
        &self.blocks
    }

    pub fn finish(&self) -> DiskDigest {
        let mut outer = Sha256::new();
        for digest in self.blocks.values() {
            outer.update(digest.0);
        }
        DiskDigest {
            linear_sha256: to_hex(&outer.finalize()),
            blocks: self.blocks.len() as u64,
        }
    }
}

/// 64 KiB of zeros (in .bss: it costs no file size) to compare against.
static ZEROES: [u8; 64 * 1024] = [0; 64 * 1024];

/// True when every byte is zero. This runs on every block, so it leans on
/// slice equality, which is libc's `memcmp` — vectorised whatever our own
/// optimisation level — and stops at the first byte holding data.
pub fn is_all_zero(data: &[u8]) -> bool {
    data.chunks(ZEROES.len())
        .all(|chunk| chunk == &ZEROES[..chunk.len()])
}

pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(DIGITS[(b >> 4) as usize] as char);
        out.push(DIGITS[(b & 0xf) as usize] as char);
    }
    out
}

fn hex_sha256<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let text = String::deserialize(d)?;
    match from_hex(&text) {
        Some(_) => Ok(text),
        None => Err(serde::de::Error::custom(format!(
            "linear_sha256 {:?} is not 64 hex digits",
            text.chars().take(70).collect::<String>()
        ))),
    }
}

fn from_hex(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in text.as_bytes().chunks(2).enumerate() {
        let hi = (pair[0] as char).to_digit(16)?;
        let lo = (pair[1] as char).to_digit(16)?;
        out[i] = (hi * 16 + lo) as u8;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_detection_sees_a_single_set_byte() {
        let mut block = vec![0u8; 4099];
        assert!(is_all_zero(&block));
        block[4098] = 1;
        assert!(!is_all_zero(&block));
        block[4098] = 0;
        block[7] = 0x80;
        assert!(!is_all_zero(&block));
    }

    #[test]
    fn linear_digest_ignores_insertion_order() {
        let a = BlockDigest::of(b"first");
        let b = BlockDigest::of(b"second");
        let mut forward = DigestBuilder::default();
        forward.insert(BlockIndex(1), a);
        forward.insert(BlockIndex(9), b);
        let mut backward = DigestBuilder::default();
        backward.insert(BlockIndex(9), b);
        backward.insert(BlockIndex(1), a);
        assert_eq!(forward.finish(), backward.finish());
        // The LINEAR rule: sha256(digest(a) || digest(b)).
        let mut joined = Vec::new();
        joined.extend_from_slice(&a.0);
        joined.extend_from_slice(&b.0);
        assert_eq!(
            forward.finish().linear_sha256,
            to_hex(&Sha256::digest(&joined))
        );
        assert_eq!(forward.finish().blocks, 2);
    }

    #[test]
    fn digests_round_trip_through_hex() {
        let d = BlockDigest::of(b"altishift");
        assert_eq!(BlockDigest::from_hex(&d.to_hex()), Some(d));
        assert_eq!(BlockDigest::from_hex("zz"), None);
    }
}
