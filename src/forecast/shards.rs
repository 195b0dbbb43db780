//! The object space split into forecast shards, so that several processes share the
//! forecaster: an object belongs to one shard (a hash of its id), and a process keeps
//! state for, and predicts, only the objects of the shards it holds. Which process
//! holds which shard is decided by leases in the catalogue (see `crate::jobs`).

use std::collections::BTreeSet;

/// The shards one process holds, of `count`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shards {
    count: u32,
    held: BTreeSet<u32>,
}

impl Shards {
    /// Every shard of one: the whole object space (the simulator, a dry run, one
    /// process alone).
    pub fn all() -> Shards {
        Shards::of(1, [0])
    }

    /// `held` of `count` shards (`count` at least one; shards past it are ignored).
    pub fn of(count: u32, held: impl IntoIterator<Item = u32>) -> Shards {
        let count = count.max(1);
        Shards {
            count,
            held: held.into_iter().filter(|&s| s < count).collect(),
        }
    }

    /// Whether the object `id` belongs to a held shard.
    pub fn holds(&self, id: &str) -> bool {
        self.held.contains(&shard_of(id, self.count))
    }

    /// Whether every shard is held: this process forecasts every object.
    pub fn is_all(&self) -> bool {
        self.held.len() == self.count as usize
    }

    /// Whether shard 0 is held: its holder ranks every object against the tiers'
    /// capacities.
    pub fn places(&self) -> bool {
        self.held.contains(&0)
    }

    /// Whether no shard is held: this process forecasts nothing.
    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }
}

/// The shard of `count` that the object `id` belongs to: FNV-1a of its bytes, the same
/// in every process and every release.
pub fn shard_of(id: &str, count: u32) -> u32 {
    let hash = id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    (hash % u64::from(count.max(1))) as u32
}

/// How many of `count` shards each of `members` live forecasting processes holds at
/// most: all of them shared out, none idle while another holds two more than it.
pub fn fair_share(count: u32, members: usize) -> usize {
    (count as usize).div_ceil(members.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_object_has_one_shard_and_shards_are_about_even() {
        let mut sizes = [0u32; 6];
        for n in 0..60_000 {
            let id = crate::db::new_id();
            let shard = shard_of(&id, 6);
            assert_eq!(shard, shard_of(&id, 6), "{n}");
            sizes[shard as usize] += 1;
        }
        for size in sizes {
            assert!((9_000..11_000).contains(&size), "{sizes:?}");
        }
        // Fixed for good: processes of different releases must agree.
        assert_eq!(shard_of("object-1", 16), shard_of("object-1", 16));
        assert_eq!(shard_of("", 7), (0xcbf2_9ce4_8422_2325u64 % 7) as u32);
    }

    #[test]
    fn held_shards_hold_their_objects_only() {
        let ids: Vec<String> = (0..1000).map(|n| format!("object-{n}")).collect();
        let halves = [Shards::of(4, [0, 1]), Shards::of(4, [2, 3])];
        for id in &ids {
            assert_eq!(
                halves.iter().filter(|s| s.holds(id)).count(),
                1,
                "{id} is in exactly one half"
            );
            assert!(Shards::all().holds(id));
        }
        assert!(Shards::all().is_all() && Shards::all().places());
        assert!(!halves[0].is_all() && halves[0].places() && !halves[1].places());
        assert_eq!(Shards::of(4, [3, 9]), Shards::of(4, [3]));
        assert!(Shards::of(4, []).is_empty() && !halves[1].is_empty());
    }

    #[test]
    fn a_fair_share_leaves_no_shard_unheld() {
        assert_eq!(fair_share(16, 1), 16);
        assert_eq!(fair_share(6, 3), 2);
        assert_eq!(fair_share(16, 3), 6);
        assert_eq!(fair_share(2, 5), 1);
        assert_eq!(fair_share(4, 0), 4);
        for count in 1..40 {
            for members in 1..10 {
                assert!(fair_share(count, members) * members >= count as usize);
            }
        }
    }
}
