//! Reference placements of the hot tier, computed from the same trace as the policies
//! and over the same scored part, with the same hot-tier capacity: what a policy's hit
//! ratio can be compared with.
//!
//! All three look at the hottest tier only (every other object counts as elsewhere),
//! place objects whole, and fill the capacity greedily by accesses per byte, which is
//! the best packing up to the last object that does not fit. With no capacity set,
//! everything fits.

use super::report::ReferenceReport;
use super::report::ratio;

/// No object: the end of the LRU list.
const NIL: u32 = u32::MAX;

/// The objects of `candidates` that fill `capacity` best by accesses per byte, most
/// accessed per byte first (ties by object, so the result is deterministic).
fn fill(
    candidates: &mut [u32],
    hits: impl Fn(u32) -> u64,
    size: &[u64],
    capacity: Option<u64>,
) -> Vec<u32> {
    let density = |o: u32| hits(o) as f64 / size[o as usize].max(1) as f64;
    candidates.sort_unstable_by(|&a, &b| density(b).total_cmp(&density(a)).then(a.cmp(&b)));
    let mut room = capacity.unwrap_or(u64::MAX);
    candidates
        .iter()
        .copied()
        .filter(|&o| {
            let bytes = size[o as usize];
            let fits = bytes <= room;
            if fits {
                room -= bytes;
            }
            fits
        })
        .collect()
}

/// The best static placement: knowing every object's accesses over the whole scored
/// part, the hot tier holds the ones with the most accesses per byte, all along.
pub(super) fn best_static(hits: &[u64], size: &[u64], capacity: Option<u64>) -> ReferenceReport {
    let mut objects: Vec<u32> = (0..hits.len() as u32)
        .filter(|&o| hits[o as usize] > 0)
        .collect();
    let hot: u64 = fill(&mut objects, |o| hits[o as usize], size, capacity)
        .iter()
        .map(|&o| hits[o as usize])
        .sum();
    let accesses = hits.iter().sum();
    ReferenceReport {
        name: "best static".into(),
        accesses,
        hot_accesses: hot,
        hot_hit_ratio: ratio(hot, accesses),
        moves: 0,
        bytes_moved: 0,
    }
}

/// Promote on access, evict the least recently used: a cache in the hot tier's
/// capacity. Promotion is instant; an object larger than the capacity is never cached.
/// Moves count promotions and evictions.
pub(super) struct Lru {
    capacity: Option<u64>,
    used: u64,
    /// Towards the most recently used; `NIL` at the head.
    newer: Vec<u32>,
    /// Towards the least recently used; `NIL` at the tail.
    older: Vec<u32>,
    cached: Vec<bool>,
    /// Size of each object as cached.
    size: Vec<u64>,
    head: u32,
    tail: u32,
    accesses: u64,
    hits: u64,
    moves: u64,
    bytes_moved: u64,
}

impl Lru {
    pub(super) fn new(capacity: Option<u64>) -> Lru {
        Lru {
            capacity,
            used: 0,
            newer: Vec::new(),
            older: Vec::new(),
            cached: Vec::new(),
            size: Vec::new(),
            head: NIL,
            tail: NIL,
            accesses: 0,
            hits: 0,
            moves: 0,
            bytes_moved: 0,
        }
    }

    /// An access of object `o` of `size` bytes; counted when `scored`.
    pub(super) fn access(&mut self, o: u32, size: u64, scored: bool) {
        let i = o as usize;
        if i >= self.cached.len() {
            self.cached.resize(i + 1, false);
            self.newer.resize(i + 1, NIL);
            self.older.resize(i + 1, NIL);
            self.size.resize(i + 1, 0);
        }
        if scored {
            self.accesses += 1;
        }
        if self.cached[i] {
            if scored {
                self.hits += 1;
            }
            self.unlink(o);
            self.push_front(o);
            return;
        }
        let capacity = self.capacity.unwrap_or(u64::MAX);
        if size > capacity {
            return;
        }
        while self.used + size > capacity && self.tail != NIL {
            let evicted = self.tail;
            self.unlink(evicted);
            self.cached[evicted as usize] = false;
            let evicted_size = self.size[evicted as usize];
            self.used -= evicted_size;
            if scored {
                self.moves += 1;
                self.bytes_moved += evicted_size;
            }
        }
        self.cached[i] = true;
        self.size[i] = size;
        self.push_front(o);
        self.used += size;
        if scored {
            self.moves += 1;
            self.bytes_moved += size;
        }
    }

    fn unlink(&mut self, o: u32) {
        let (newer, older) = (self.newer[o as usize], self.older[o as usize]);
        match newer {
            NIL => self.head = older,
            n => self.older[n as usize] = older,
        }
        match older {
            NIL => self.tail = newer,
            n => self.newer[n as usize] = newer,
        }
    }

    fn push_front(&mut self, o: u32) {
        self.newer[o as usize] = NIL;
        self.older[o as usize] = self.head;
        match self.head {
            NIL => self.tail = o,
            h => self.newer[h as usize] = o,
        }
        self.head = o;
    }

    pub(super) fn report(&self) -> ReferenceReport {
        ReferenceReport {
            name: "LRU".into(),
            accesses: self.accesses,
            hot_accesses: self.hits,
            hot_hit_ratio: ratio(self.hits, self.accesses),
            moves: self.moves,
            bytes_moved: self.bytes_moved,
        }
    }
}

/// Perfect foresight: at the start of every forecaster interval, the hot tier is
/// filled knowing the interval's accesses. Moves are the objects placed that were not
/// placed the interval before (promotions); they take no time.
pub(super) struct Foresight {
    capacity: Option<u64>,
    /// Accesses per object in the interval.
    counts: Vec<u32>,
    touched: Vec<u32>,
    placed: Vec<bool>,
    placed_list: Vec<u32>,
    accesses: u64,
    hits: u64,
    moves: u64,
    bytes_moved: u64,
}

impl Foresight {
    pub(super) fn new(capacity: Option<u64>) -> Foresight {
        Foresight {
            capacity,
            counts: Vec::new(),
            touched: Vec::new(),
            placed: Vec::new(),
            placed_list: Vec::new(),
            accesses: 0,
            hits: 0,
            moves: 0,
            bytes_moved: 0,
        }
    }

    /// An access of object `o`; only scored accesses are placed for.
    pub(super) fn access(&mut self, o: u32, scored: bool) {
        if !scored {
            return;
        }
        let i = o as usize;
        if i >= self.counts.len() {
            self.counts.resize(i + 1, 0);
            self.placed.resize(i + 1, false);
        }
        self.accesses += 1;
        if self.counts[i] == 0 {
            self.touched.push(o);
        }
        self.counts[i] += 1;
    }

    /// The interval ends: places for it, knowing its accesses.
    pub(super) fn close(&mut self, size: &[u64]) {
        let counts = &self.counts;
        let placed = fill(
            &mut self.touched,
            |o| u64::from(counts[o as usize]),
            size,
            self.capacity,
        );
        for &o in &placed {
            let i = o as usize;
            self.hits += u64::from(self.counts[i]);
            if !self.placed[i] {
                self.moves += 1;
                self.bytes_moved += size[i];
            }
        }
        for &o in &self.placed_list {
            self.placed[o as usize] = false;
        }
        for &o in &placed {
            self.placed[o as usize] = true;
        }
        self.placed_list = placed;
        for &o in &self.touched {
            self.counts[o as usize] = 0;
        }
        self.touched.clear();
    }

    pub(super) fn report(&self) -> ReferenceReport {
        ReferenceReport {
            name: "perfect foresight".into(),
            accesses: self.accesses,
            hot_accesses: self.hits,
            hot_hit_ratio: ratio(self.hits, self.accesses),
            moves: self.moves,
            bytes_moved: self.bytes_moved,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lru_promotes_on_access_and_evicts_the_least_recently_used() {
        let mut lru = Lru::new(Some(2));
        // a b a c b: a hit on the second a; c evicts b, b then evicts a.
        for o in [0, 1, 0, 2, 1] {
            lru.access(o, 1, true);
        }
        let r = lru.report();
        assert_eq!((r.accesses, r.hot_accesses, r.moves), (5, 1, 6));
        let mut unbounded = Lru::new(None);
        for o in [0, 1, 0, 2, 1] {
            unbounded.access(o, 1_000, true);
        }
        assert_eq!(unbounded.report().hot_accesses, 2);
    }

    #[test]
    fn best_static_fills_the_tier_by_accesses_per_byte() {
        let r = best_static(&[10, 1, 5], &[10, 1, 1], Some(2));
        // Object 2 (5 per byte), then object 0 does not fit, object 1 does.
        assert_eq!((r.accesses, r.hot_accesses), (16, 6));
        assert_eq!(best_static(&[10, 1, 5], &[10, 1, 1], None).hot_accesses, 16);
    }

    #[test]
    fn perfect_foresight_places_each_interval_knowing_its_accesses() {
        let mut f = Foresight::new(Some(1));
        let size = [1, 1];
        for o in [0, 0, 0, 1] {
            f.access(o, true);
        }
        f.close(&size);
        for o in [1, 1] {
            f.access(o, true);
        }
        f.access(0, false);
        f.close(&size);
        let r = f.report();
        assert_eq!((r.accesses, r.hot_accesses, r.moves), (6, 5, 2));
    }
}
