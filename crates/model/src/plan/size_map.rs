//! Maps a source instance size to the nearest target size that has at least
//! the same vCPUs and memory.

use crate::inventory::Size;
use crate::units::Bytes;

/// The target size for a source of `source` type with `vcpus` and `memory`:
/// the same type when the target offers it (AWS → AWS keeps m5.large),
/// otherwise the smallest that fits, with `vcpus >= want` and
/// `memory >= want`. "Smallest" means least excess, memory weighed as 1 vCPU
/// per 4 GiB, so a 2 vCPU/4 GiB source prefers 2/8 over 8/4. Ties go to the
/// source's family (`m5` of `m5.large`), then to the name, for a stable plan.
pub fn nearest_size<'a>(
    sizes: &'a [Size],
    source: &str,
    vcpus: u32,
    memory: Bytes,
) -> Option<&'a Size> {
    let fits = |s: &&Size| s.vcpus >= vcpus && s.memory >= memory;
    if let Some(same) = sizes.iter().filter(fits).find(|s| s.name == source) {
        return Some(same);
    }
    let family = |name: &str| {
        name.split(['.', '-'])
            .next()
            .unwrap_or_default()
            .to_string()
    };
    let source_family = family(source);
    sizes.iter().filter(fits).min_by(|a, b| {
        excess(a, vcpus, memory)
            .total_cmp(&excess(b, vcpus, memory))
            .then_with(|| {
                (family(&b.name) == source_family).cmp(&(family(&a.name) == source_family))
            })
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
            nearest_size(&catalogue, "other", 2, Bytes::gib(4))
                .unwrap()
                .name,
            "medium"
        );
        assert_eq!(
            nearest_size(&catalogue, "other", 2, Bytes::gib(5))
                .unwrap()
                .name,
            "mem"
        );
        assert_eq!(
            nearest_size(&catalogue, "other", 1, Bytes::gib(1))
                .unwrap()
                .name,
            "small"
        );
    }

    #[test]
    fn the_same_type_is_kept_then_the_same_family_wins_a_tie() {
        let catalogue = vec![
            size("g6f.large", 2, 8),
            size("m5.large", 2, 8),
            size("r5.large", 2, 16),
        ];
        assert_eq!(
            nearest_size(&catalogue, "m5.large", 2, Bytes::gib(8))
                .unwrap()
                .name,
            "m5.large"
        );
        let no_m5 = vec![
            size("g6f.large", 2, 8),
            size("m6i.large", 2, 8),
            size("m5.xlarge", 4, 16),
        ];
        assert_eq!(
            nearest_size(&no_m5, "m6i.2xlarge", 2, Bytes::gib(8))
                .unwrap()
                .name,
            "m6i.large"
        );
        // The same type is kept only if it fits.
        assert_eq!(
            nearest_size(&catalogue, "g6f.large", 2, Bytes::gib(12))
                .unwrap()
                .name,
            "r5.large"
        );
    }

    #[test]
    fn nothing_fits_is_none() {
        let catalogue = vec![size("small", 1, 2)];
        assert!(nearest_size(&catalogue, "other", 4, Bytes::gib(2)).is_none());
    }
}
