//! Maps a source instance size to the nearest target size that has at least
//! the same vCPUs and memory.

use crate::inventory::Size;
use crate::units::Bytes;

/// The smallest target size with `vcpus >= want` and `memory >= want`.
/// "Smallest" means least excess, memory weighed as 1 vCPU per 4 GiB, so a
/// 2 vCPU/4 GiB source prefers 2/8 over 8/4. Ties go to the name, for a
/// stable plan.
pub fn nearest_size(sizes: &[Size], vcpus: u32, memory: Bytes) -> Option<&Size> {
    sizes
        .iter()
        .filter(|s| s.vcpus >= vcpus && s.memory >= memory)
        .min_by(|a, b| {
            excess(a, vcpus, memory)
                .total_cmp(&excess(b, vcpus, memory))
                .then_with(|| a.name.cmp(&b.name))
        })
}

fn excess(size: &Size, vcpus: u32, memory: Bytes) -> f64 {
    let cpu = f64::from(size.vcpus - vcpus);
    let mem_gib = (size.memory.0 - memory.0) as f64 / f64::from(1u32 << 30);
    cpu + mem_gib / 4.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn size(name: &str, vcpus: u32, gib: u64) -> Size {
        Size {
            name: name.into(),
            vcpus,
            memory: Bytes::gib(gib),
        }
    }

    #[test]
    fn picks_the_least_excess_that_fits() {
        let catalogue = vec![
            size("small", 1, 2),
            size("medium", 2, 4),
            size("mem", 2, 8),
            size("cpu", 8, 4),
        ];
        assert_eq!(
            nearest_size(&catalogue, 2, Bytes::gib(4)).unwrap().name,
            "medium"
        );
        assert_eq!(
            nearest_size(&catalogue, 2, Bytes::gib(5)).unwrap().name,
            "mem"
        );
        assert_eq!(
            nearest_size(&catalogue, 1, Bytes::gib(1)).unwrap().name,
            "small"
        );
    }

    #[test]
    fn nothing_fits_is_none() {
        let catalogue = vec![size("small", 1, 2)];
        assert!(nearest_size(&catalogue, 4, Bytes::gib(2)).is_none());
    }
}
