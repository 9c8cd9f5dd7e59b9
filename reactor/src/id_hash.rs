//! Hashing for maps keyed by ids the runtime hands out itself.
//!
//! The I/O path looks up such maps on every completion (the io_uring
//! backend's polls and in-flight sends, the runtime's task registry). The
//! keys are unique integers no peer chooses, so SipHash's defence against
//! chosen keys buys nothing there and costs tens of nanoseconds a lookup.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A hasher for `u64` ids: one widening multiplication, folded, so that
/// both the low bits (the table's bucket) and the high bits (its tag) vary
/// with every bit of the id, whether ids count up by one or in strides of
/// a power of two.
#[derive(Debug, Default, Clone, Copy)]
pub struct IdHasher(u64);

impl IdHasher {
    /// An odd constant with bits spread over the whole word (2^64 / φ).
    const K: u64 = 0x9E37_79B9_7F4A_7C15;

    fn mix(x: u64) -> u64 {
        let p = u128::from(x) * u128::from(Self::K);
        (p as u64) ^ ((p >> 64) as u64)
    }
}

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = Self::mix(self.0 ^ u64::from_le_bytes(word));
        }
    }

    fn write_u64(&mut self, id: u64) {
        self.0 = Self::mix(self.0 ^ id);
    }
}

/// A map from ids to `V`, hashed with [`IdHasher`].
pub type IdMap<V> = HashMap<u64, V, BuildHasherDefault<IdHasher>>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::BuildHasher;

    fn hash(id: u64) -> u64 {
        BuildHasherDefault::<IdHasher>::default().hash_one(id)
    }

    #[test]
    fn ids_counting_up_or_in_strides_fill_distinct_buckets() {
        for stride in [1u64, 8, 1 << 20, 1 << 32] {
            let mut buckets = std::collections::HashSet::new();
            let mut tags = std::collections::HashSet::new();
            for i in 0..256u64 {
                let h = hash(i * stride);
                buckets.insert(h & 1023);
                tags.insert(h >> 57);
            }
            // 256 ids over 1024 buckets: a hash that ignored the id's
            // varying bits would put them all in a few.
            assert!(
                buckets.len() > 200,
                "stride {stride}: {} buckets",
                buckets.len()
            );
            assert!(tags.len() > 64, "stride {stride}: {} tags", tags.len());
        }
    }

    #[test]
    fn a_map_finds_what_it_holds() {
        let mut map = IdMap::default();
        for i in 0..10_000u64 {
            map.insert(i << 3, i);
        }
        for i in 0..10_000u64 {
            assert_eq!(map.get(&(i << 3)), Some(&i));
        }
        assert_eq!(map.get(&1), None);
    }
}
