//! Small value types that say what a number means, so a byte count is never
//! mistaken for a block index.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Transfer block size: the EBS direct API's block size, used by every provider.
pub const BLOCK_SIZE: u64 = 512 * 1024;

/// A count of bytes.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Bytes(pub u64);

impl Bytes {
    pub const ZERO: Bytes = Bytes(0);

    pub fn gib(n: u64) -> Bytes {
        Bytes(n << 30)
    }

    pub fn mib(n: u64) -> Bytes {
        Bytes(n << 20)
    }

    /// Number of transfer blocks needed to cover this many bytes.
    pub fn blocks(self) -> u64 {
        self.0.div_ceil(BLOCK_SIZE)
    }
}

impl std::ops::Add for Bytes {
    type Output = Bytes;
    fn add(self, rhs: Bytes) -> Bytes {
        Bytes(self.0 + rhs.0)
    }
}

impl std::ops::AddAssign for Bytes {
    fn add_assign(&mut self, rhs: Bytes) {
        self.0 += rhs.0;
    }
}

impl std::iter::Sum for Bytes {
    fn sum<I: Iterator<Item = Bytes>>(iter: I) -> Bytes {
        Bytes(iter.map(|b| b.0).sum())
    }
}

impl fmt::Display for Bytes {
    /// Binary units with one decimal: `1.5 GiB`, `512 B`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
        let mut value = self.0 as f64;
        let mut unit = 0;
        while value >= 1024.0 && unit < UNITS.len() - 1 {
            value /= 1024.0;
            unit += 1;
        }
        if unit == 0 {
            write!(f, "{} B", self.0)
        } else {
            write!(f, "{value:.1} {}", UNITS[unit])
        }
    }
}

/// Parses `40MiB`, `1.5 GiB`, `100MB`, `512` (bytes) into a byte count.
pub fn parse_bytes(text: &str) -> Result<Bytes, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("'{text}' is not a size (try 40MiB or 2GiB)"))?;
    let factor: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "kib" => 1024.0,
        "m" | "mb" => 1e6,
        "mib" => 1024.0 * 1024.0,
        "g" | "gb" => 1e9,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        other => {
            return Err(format!(
                "unknown unit '{other}' in '{text}' (use B, KiB, MiB, GiB, KB, MB, GB)"
            ));
        }
    };
    Ok(Bytes((number * factor) as u64))
}

/// Parses a rate such as `40MiB/s` into bytes per second.
pub fn parse_rate(text: &str) -> Result<Bytes, String> {
    let trimmed = text.trim();
    let amount = trimmed.strip_suffix("/s").unwrap_or(trimmed);
    parse_bytes(amount)
}

/// Index of a 512 KiB block within a disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct BlockIndex(pub u64);

impl BlockIndex {
    pub fn offset(self) -> u64 {
        self.0 * BLOCK_SIZE
    }
}

/// Megabytes (10^6) per second, the unit operators read throughput in.
pub fn mb_per_s(bytes: u64, seconds: f64) -> f64 {
    if seconds <= 0.0 {
        0.0
    } else {
        bytes as f64 / seconds / 1e6
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_display_uses_binary_units() {
        assert_eq!(Bytes(512).to_string(), "512 B");
        assert_eq!(Bytes::mib(3).to_string(), "3.0 MiB");
        assert_eq!(Bytes(3 * (1 << 29)).to_string(), "1.5 GiB");
    }

    #[test]
    fn sizes_and_rates_parse() {
        assert_eq!(parse_bytes("40MiB"), Ok(Bytes::mib(40)));
        assert_eq!(parse_rate("40MiB/s"), Ok(Bytes::mib(40)));
        assert_eq!(parse_bytes("2 GiB"), Ok(Bytes::gib(2)));
        assert_eq!(parse_bytes("1MB"), Ok(Bytes(1_000_000)));
        assert!(parse_bytes("fast").is_err());
        assert!(parse_bytes("3 parsecs").unwrap_err().contains("parsecs"));
    }

    #[test]
    fn block_count_rounds_up() {
        assert_eq!(Bytes(1).blocks(), 1);
        assert_eq!(Bytes(BLOCK_SIZE).blocks(), 1);
        assert_eq!(Bytes(BLOCK_SIZE + 1).blocks(), 2);
        assert_eq!(Bytes::gib(1).blocks(), 2048);
    }
}
