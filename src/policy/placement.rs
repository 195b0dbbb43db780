//! Placement by rank against capacity: which objects each tier with a capacity holds,
//! and which moves are worth making to get there.
//!
//! Every object has a *value*, the accesses expected of it over the forecast horizon,
//! and a *density*, its value per byte. A tier with a capacity is filled densest first
//! (the greedy answer to the knapsack of accesses against bytes) up to its capacity
//! less its headroom; the headroom is left for bursts admitted between forecaster runs.
//!
//! A move is made only when it pays for itself, over the time an object placed on a
//! tier can be expected to stay there: by Little's law, the bytes the tier holds over
//! the bytes entering it per unit of time ([`Turnover`], measured over the last day, so
//! a day at most and the horizon at least). A copy reads the object once, as an access
//! served from the colder tier would, and an object placed on a tier with a capacity
//! leaves it one day to make room for a denser one: a place costs
//! [`ENTRY_COST_ACCESSES`], two moves. An object is placed only when its value held
//! over the stay exceeds that, and so does what its last day bears out (its forecast
//! for the next horizon, the day's mean rate for the rest): a scan's one read a day of
//! each object never pays, however a forecast reads the hour after it. Into a full tier
//! it must also bring more accesses than the residents it pushes out (least dense
//! first, each less dense than it) take with them, beyond the noise of those values
//! (one standard deviation of their difference, from the estimates' variances: ranks
//! near the bar reshuffle on noise alone), by more than that cost. What a swap brings
//! in includes the next objects in rank that fit the room it frees beyond the entrant's
//! size and are denser than what it pushes out: one large resident makes way for many
//! small denser objects together, a trade none of them could justify alone. A tier that
//! churns thus asks more of a swap, so that forecasts wavering around each other do
//! not swap objects back and forth; those demotions have
//! reason `capacity_rebalance` and go to the hottest colder tier with room. Nothing
//! else leaves a tier with a capacity: an object gone cold stays until a denser one
//! needs its room. Every run's swaps come out of a [`MoveBudget`] of bytes per hour, so
//! a forecast that changes its mind cannot keep the mover busy.
//!
//! The same rules admit a burst between runs ([`Standing::admit`]): against the
//! standing the last run left, with the burst's rate as its value.

use super::rules::Allowed;
use crate::db::{DAY_MS, MoveReason};

/// What one move costs, in accesses: its copy reads the object once, as serving one
/// access from the colder tier does.
pub const MOVE_COST_ACCESSES: f64 = 1.0;

/// What a place on a tier with a capacity costs: the move in, and the move out that
/// making room for a denser object will take one day.
pub const ENTRY_COST_ACCESSES: f64 = 2.0 * MOVE_COST_ACCESSES;

/// Whether an object valued at `value` over the next horizon (`horizon_ms`) and read
/// `day_rate` times per horizon over the last day could pay for a place on some tier:
/// over the longest stay a tier's turnover allows, a day.
pub fn may_pay(value: f64, day_rate: f64, horizon_ms: i64) -> bool {
    pays_its_place(value, day_rate, horizons_a_day(horizon_ms))
}

/// Whether an object pays for its place over `stays` horizons: at its value held over
/// them, and at what its last day bears out (its value for the next horizon, its day's
/// rate for the rest).
fn pays_its_place(value: f64, day_rate: f64, stays: f64) -> bool {
    let rest = (stays - 1.0).max(0.0);
    value * stays.max(1.0) > ENTRY_COST_ACCESSES && value + day_rate * rest > ENTRY_COST_ACCESSES
}

/// How many horizons of `horizon_ms` a day holds (one at least).
fn horizons_a_day(horizon_ms: i64) -> f64 {
    (DAY_MS as f64 / horizon_ms.max(1) as f64).max(1.0)
}

/// Bytes the forecaster's runs may swap: a bucket that fills at a rate of bytes per
/// hour up to one hour's worth (or the largest object seen, so that every object can
/// move), and that every promotion pushing residents out empties by the bytes of all
/// its moves. Promotions into free room and bursts admitted between runs are not held
/// back by it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MoveBudget {
    per_hour: Option<u64>,
    /// Bytes that may still move.
    left: f64,
    /// When it was last filled, ms.
    filled_at: Option<i64>,
}

impl MoveBudget {
    /// A budget of `per_hour` bytes an hour, starting full; `None`: no limit.
    pub fn new(per_hour: Option<u64>) -> MoveBudget {
        MoveBudget {
            per_hour,
            left: per_hour.map_or(f64::INFINITY, |b| b as f64),
            filled_at: None,
        }
    }

    /// Adds what has accrued by `now_ms`, up to an hour's worth, or `largest` bytes.
    pub fn fill(&mut self, now_ms: i64, largest: u64) {
        let Some(per_hour) = self.per_hour else {
            return;
        };
        let elapsed = self
            .filled_at
            .map_or(0, |at| now_ms.saturating_sub(at).max(0));
        self.filled_at = Some(now_ms);
        let cap = per_hour.max(largest) as f64;
        self.left = (self.left + per_hour as f64 * elapsed as f64 / 3_600_000.0).min(cap);
    }

    fn allows(&self, bytes: u64) -> bool {
        bytes as f64 <= self.left
    }

    fn spend(&mut self, bytes: u64) {
        self.left -= bytes as f64;
    }
}

/// Bytes entering each tier over about the last day (a sum that decays by e every
/// day), from which the time an entrant can be expected to stay follows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Turnover {
    /// Per tier, by rank.
    entered: Vec<f64>,
    /// When it last decayed, ms.
    at: Option<i64>,
}

impl Turnover {
    /// Lets the bytes that entered before `now_ms` count for less.
    pub fn decay(&mut self, now_ms: i64) {
        if let Some(at) = self.at {
            let days = now_ms.saturating_sub(at).max(0) as f64 / DAY_MS as f64;
            let kept = (-days).exp();
            self.entered.iter_mut().for_each(|e| *e *= kept);
        }
        self.at = Some(now_ms);
    }

    fn enter(&mut self, tier: usize, bytes: u64) {
        if self.entered.len() <= tier {
            self.entered.resize(tier + 1, 0.0);
        }
        self.entered[tier] += bytes as f64;
    }

    /// How long an object entering `tier`, which holds `used` bytes, can be expected to
    /// stay, ms: `used` over the bytes entering per ms; from `horizon_ms` to a day (no
    /// longer stay can be told from a day's turnover).
    fn stay_ms(&self, tier: usize, used: u64, horizon_ms: i64) -> f64 {
        let day = DAY_MS as f64;
        let entered = self.entered.get(tier).copied().unwrap_or_default();
        let stay = if entered > 0.0 {
            used as f64 * day / entered
        } else {
            day
        };
        stay.clamp(horizon_ms as f64, day.max(horizon_ms as f64))
    }
}

/// What one run hands the next: the move budget left, and the tiers' turnover.
#[derive(Debug, Clone, PartialEq)]
pub struct Pace {
    /// Bytes the runs may still swap.
    pub budget: MoveBudget,
    /// Bytes that entered each tier lately.
    pub turnover: Turnover,
}

impl Pace {
    /// A first run's: a full budget of `per_hour` bytes an hour, no turnover yet.
    pub fn new(per_hour: Option<u64>) -> Pace {
        Pace {
            budget: MoveBudget::new(per_hour),
            turnover: Turnover::default(),
        }
    }

    /// Brought up to `now_ms`: the budget filled (up to `largest` bytes at least), the
    /// turnover decayed.
    pub fn at(mut self, now_ms: i64, largest: u64) -> Pace {
        self.budget.fill(now_ms, largest);
        self.turnover.decay(now_ms);
        self
    }
}

/// What placement needs to know of one tier.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TierLimit {
    /// Bytes it may hold; `None`: unbounded, placed by thresholds instead.
    pub capacity: Option<u64>,
    /// Share of the capacity a forecaster run leaves free for bursts.
    pub headroom: f64,
    /// Value an object must pass to be placed here (`TIER_<NAME>_PREDICT_ABOVE`, when
    /// set), whatever its rank.
    pub floor: Option<f64>,
}

impl TierLimit {
    /// Bytes a forecaster run fills it to.
    fn fill_limit(&self) -> Option<u64> {
        self.capacity
            .map(|c| (c as f64 * (1.0 - self.headroom)).floor() as u64)
    }
}

/// One object as placement sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate<K> {
    /// The caller's name for it.
    pub key: K,
    /// Its tier, 0 the hottest.
    pub tier: usize,
    /// Its size in bytes.
    pub size: u64,
    /// Accesses expected over the horizon.
    pub value: f64,
    /// The variance of `value` as an estimate: a Poisson count's (`value`) for a
    /// forecast of the coming accesses, less for a steady stream's long-run mean.
    pub variance: f64,
    /// Accesses per horizon at its mean rate of the last day.
    pub day_rate: f64,
    /// The tier a move under way takes it to: it stays put in this run, and its bytes
    /// count on both tiers until the move is done.
    pub moving_to: Option<usize>,
    /// The tiers operator rules allow it on: it is neither placed on another nor pushed
    /// out to one.
    pub allowed: Allowed,
}

impl<K> Candidate<K> {
    fn density(&self) -> f64 {
        density(self.value, self.size)
    }
}

impl<K: Ord> Candidate<K> {
    /// The order a tier's residents are pushed out in, the rank's from its bottom:
    /// candidates that come in it are ranked in little more than a pass.
    pub fn push_order(a: &Candidate<K>, b: &Candidate<K>) -> std::cmp::Ordering {
        by_rank((b.density(), &b.key), (a.density(), &a.key))
    }
}

fn density(value: f64, size: u64) -> f64 {
    value / size.max(1) as f64
}

/// A move placement calls for.
#[derive(Debug, Clone, PartialEq)]
pub struct Placed<K> {
    /// The object.
    pub key: K,
    /// From this tier.
    pub from: usize,
    /// To this one.
    pub to: usize,
    /// Its size in bytes: what the move copies.
    pub size: u64,
    /// Its value, as ranked.
    pub value: f64,
    /// `ProactivePrediction` for a promotion, `CapacityRebalance` for the demotions
    /// that make room for it (a burst's admission says `ReactiveAccessSpike`).
    pub reason: MoveReason,
}

#[derive(Debug, Clone, PartialEq)]
struct Resident<K> {
    key: K,
    size: u64,
    value: f64,
    variance: f64,
    day_rate: f64,
    /// `value` per byte, computed once: every run sorts the residents by it.
    density: f64,
    /// The coldest tier it may be pushed out to.
    coldest: usize,
}

impl<K> Resident<K> {
    fn new(key: K, size: u64, value: f64, variance: f64, day_rate: f64) -> Resident<K> {
        Resident {
            key,
            size,
            value,
            variance,
            day_rate,
            density: density(value, size),
            coldest: usize::MAX,
        }
    }

    /// The candidate `c` as a resident.
    fn of(c: &Candidate<K>) -> Resident<K>
    where
        K: Clone,
    {
        Resident {
            coldest: c.allowed.coldest,
            ..Resident::new(c.key.clone(), c.size, c.value, c.variance, c.day_rate)
        }
    }

    fn density(&self) -> f64 {
        self.density
    }
}

/// The rank, of objects of `density` and key: densest first, of equal density the
/// highest key (the newest object, where ids grow with age), so that a run does not
/// depend on the order its candidates came in.
fn by_rank<K: Ord>(a: (f64, &K), b: (f64, &K)) -> std::cmp::Ordering {
    b.0.total_cmp(&a.0).then_with(|| b.1.cmp(a.1))
}

impl<K: Ord> Resident<K> {
    /// The order a tier's residents are pushed out in: the rank's, from its bottom.
    fn push_order(a: &Resident<K>, b: &Resident<K>) -> std::cmp::Ordering {
        by_rank((b.density(), &b.key), (a.density(), &a.key))
    }
}

/// Why an object is not placed on a tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    /// It does not fit, does not pay its place, is held back by the budget, or would
    /// push out denser residents.
    Unfit,
    /// What its swap brings in does not beat what it pushes out by enough.
    NoGain,
}

/// One tier as a run left it.
#[derive(Debug, Clone, PartialEq)]
struct TierStanding<K> {
    limit: TierLimit,
    /// Bytes held, counting moves planned into it and not out of it.
    used: u64,
    /// Objects that may be pushed out, the least dense first; bounded tiers only.
    residents: Vec<Resident<K>>,
}

/// The tiers as the last run placed them: what a burst is admitted against.
#[derive(Debug, Clone, PartialEq)]
pub struct Standing<K> {
    tiers: Vec<TierStanding<K>>,
    /// What the run may still move, and the tiers' turnover.
    pace: Pace,
    /// The horizon values are counted over, ms.
    horizon_ms: i64,
}

impl<K: Clone + Ord> Standing<K> {
    /// Fills the tiers with capacities by rank: the moves that pay for themselves, most
    /// valuable first, and the standing they leave. Objects on tiers without a capacity
    /// are only ever promoted from here; whatever moves among those tiers is the
    /// thresholds' business.
    pub fn plan(
        limits: &[TierLimit],
        candidates: &[Candidate<K>],
        horizon_ms: i64,
        pace: Pace,
    ) -> (Vec<Placed<K>>, Standing<K>) {
        let mut standing = Standing {
            pace,
            horizon_ms: horizon_ms.max(1),
            tiers: limits
                .iter()
                .map(|&limit| TierStanding {
                    limit,
                    used: 0,
                    residents: Vec::new(),
                })
                .collect(),
        };
        for c in candidates {
            let Some(tier) = standing.tiers.get_mut(c.tier) else {
                continue;
            };
            tier.used += c.size;
            let bounded = tier.limit.capacity.is_some();
            match c.moving_to {
                Some(to) if to != c.tier => {
                    if let Some(dest) = standing.tiers.get_mut(to) {
                        dest.used += c.size;
                    }
                }
                Some(_) => {}
                // One no rule lets go colder holds its place: its bytes count, but nothing
                // pushes it out.
                None if bounded && c.allowed.coldest > c.tier => {
                    tier.residents.push(Resident::of(c));
                }
                None => {}
            }
        }
        // A stable sort: candidates that come in the last run's order of residents (as
        // the simulator's do) are sorted in little more than a pass.
        for tier in &mut standing.tiers {
            tier.residents.sort_by(Resident::push_order);
        }
        // Only objects that may be promoted into a tier filled by rank are ranked: every
        // such tier passes over one already on or above it, or not worth a move.
        let hottest_ranked = limits.iter().position(|l| l.fill_limit().is_some());
        let mut order: Vec<(f64, usize)> = (0..candidates.len())
            .filter(|&i| {
                let c = &candidates[i];
                c.moving_to.is_none()
                    && c.tier < limits.len()
                    && hottest_ranked.is_some_and(|t| c.tier > t.max(c.allowed.hottest))
                    && may_pay(c.value, c.day_rate, horizon_ms)
            })
            .map(|i| (candidates[i].density(), i))
            .collect();
        order.sort_unstable_by(|a, b| {
            by_rank((a.0, &candidates[a.1].key), (b.0, &candidates[b.1].key))
        });
        // The smallest size from each place in rank on: what could still enter free room.
        let mut smallest_from = vec![u64::MAX; order.len() + 1];
        for (j, &(_, i)) in order.iter().enumerate().rev() {
            smallest_from[j] = smallest_from[j + 1].min(candidates[i].size);
        }
        let mut moved = vec![false; candidates.len()];
        let mut planned = Vec::new();
        for (to, limit) in limits.iter().enumerate() {
            let Some(fill_limit) = limit.fill_limit() else {
                continue;
            };
            // The least dense resident that a swap with its followers could not push
            // out: the objects after it in rank, with fewer followers, will not either.
            let mut held = None;
            for (next, &(_, i)) in order.iter().enumerate().map(|(j, o)| (j + 1, o)) {
                let c = &candidates[i];
                if standing.closed_below(to, c.density(), smallest_from[next - 1], fill_limit) {
                    break;
                }
                if moved[i] || c.tier <= to || !c.allowed.allows(to) {
                    continue;
                }
                let entrant = Resident::of(c);
                let bar = standing.bar(to);
                let look = held != bar;
                let followers = order[next..]
                    .iter()
                    .map(|&(_, k)| k)
                    .filter(|&k| {
                        !moved[k] && candidates[k].tier > to && candidates[k].allowed.allows(to)
                    })
                    .map(|k| &candidates[k])
                    .take(if look { usize::MAX } else { 0 });
                match standing.make_room(
                    to,
                    &entrant,
                    c.tier,
                    fill_limit,
                    MoveReason::ProactivePrediction,
                    followers,
                ) {
                    Ok(moves) => {
                        moved[i] = true;
                        planned.extend(moves);
                    }
                    Err(Refusal::NoGain) if look => held = bar,
                    Err(_) => {}
                }
            }
        }
        // Still in order but for the entrants pushed at the end: a stable sort merges
        // them in at the cost of a pass (the order is total, so any sort gives the same).
        for tier in &mut standing.tiers {
            tier.residents.sort_by(Resident::push_order);
        }
        (planned, standing)
    }

    /// What the run that made this standing hands the next one.
    pub fn pace(&self) -> &Pace {
        &self.pace
    }

    /// A burst of `recent` accesses within `window_ms` of `key`, `size` bytes on tier
    /// `from`, valued at that rate over the horizon and the last day: the moves that
    /// place it on the hottest bounded tier hotter than `from` that it pays to place it
    /// on, with any demotions that make room (first: they are to be queued before the
    /// promotion), recorded in the standing (the headroom may be used); only a tier
    /// `allowed` takes it. `None`: no bounded tier takes it.
    pub fn admit(
        &mut self,
        key: &K,
        from: usize,
        size: u64,
        recent: u64,
        window_ms: i64,
        allowed: Allowed,
    ) -> Option<Vec<Placed<K>>> {
        let rate = recent as f64 * self.horizon_ms as f64 / window_ms.max(1) as f64;
        // Nothing says a burst outlasts the horizon it was measured over: it must pay
        // for its place within that horizon.
        if rate <= ENTRY_COST_ACCESSES {
            return None;
        }
        let entrant = Resident {
            coldest: allowed.coldest,
            ..Resident::new(key.clone(), size, rate, rate, rate)
        };
        for to in allowed.hottest..from.min(self.tiers.len()) {
            let Some(capacity) = self.tiers[to].limit.capacity else {
                continue;
            };
            if let Ok(moves) = self.make_room(
                to,
                &entrant,
                from,
                capacity,
                MoveReason::ReactiveAccessSpike,
                std::iter::empty(),
            ) {
                self.tiers[to].residents.sort_by(Resident::push_order);
                return Some(moves);
            }
        }
        None
    }

    /// The density an object must beat to enter tier `tier` when it is full: that of
    /// its least dense resident (accesses over the horizon per byte); `None` for an
    /// unbounded or empty tier.
    pub fn bar(&self, tier: usize) -> Option<f64> {
        let t = self.tiers.get(tier)?;
        t.limit.capacity?;
        t.residents.first().map(Resident::density)
    }

    /// Whether no object of `density` or less, the smallest of them `smallest` bytes,
    /// can enter tier `tier`, filled up to `limit`: none fits its free room, and none
    /// is denser than its least dense resident, the first one a swap would push out.
    fn closed_below(&self, tier: usize, density: f64, smallest: u64, limit: u64) -> bool {
        let t = &self.tiers[tier];
        smallest > limit.saturating_sub(t.used)
            && t.residents.first().is_none_or(|r| r.density() >= density)
    }

    /// Bytes tier `tier` holds as placed, moves planned included.
    #[cfg(test)]
    fn used(&self, tier: usize) -> u64 {
        self.tiers.get(tier).map_or(0, |t| t.used)
    }

    /// Places `entrant` from tier `from` on tier `to`, filled up to `limit` bytes, if it
    /// pays (and, for a forecaster run's move, fits the budget): the promotion last in
    /// the returned moves, after the demotions making room. `followers`, the objects
    /// after it in rank, count towards a swap's gain where they fit the room it frees;
    /// they are not placed here (the caller's next entrants, they take that room).
    fn make_room<'c>(
        &mut self,
        to: usize,
        entrant: &Resident<K>,
        from: usize,
        limit: u64,
        reason: MoveReason,
        followers: impl Iterator<Item = &'c Candidate<K>>,
    ) -> Result<Vec<Placed<K>>, Refusal>
    where
        K: 'c,
    {
        let tier = &self.tiers[to];
        let stays =
            self.pace.turnover.stay_ms(to, tier.used, self.horizon_ms) / self.horizon_ms as f64;
        let may_enter = |value: f64, day_rate: f64| {
            pays_its_place(value, day_rate, stays)
                && tier.limit.floor.is_none_or(|floor| value > floor)
        };
        if entrant.size > limit || !may_enter(entrant.value, entrant.day_rate) {
            return Err(Refusal::Unfit);
        }
        let room = limit.saturating_sub(tier.used);
        let mut freed = 0;
        let mut pushed_value = 0.0;
        let mut pushed_variance = 0.0;
        let mut pushed = 0;
        while room + freed < entrant.size {
            let resident = tier.residents.get(pushed).ok_or(Refusal::Unfit)?;
            if resident.density() >= entrant.density() {
                return Err(Refusal::Unfit);
            }
            freed += resident.size;
            pushed_value += resident.value;
            pushed_variance += resident.variance;
            pushed += 1;
        }
        let bytes = entrant.size + freed;
        // Filling free room is never thrash: only swaps are held to the budget.
        let budgeted = reason == MoveReason::ProactivePrediction && pushed > 0;
        // What the swap brings in: the entrant, and the next objects in rank that fit the
        // room it frees beyond the entrant's size and are denser than what it pushes out
        // (one large resident may make way for many small ones).
        let (mut value, mut variance, mut entrants) = (entrant.value, entrant.variance, 1.0);
        if pushed > 0 {
            let bar = tier.residents[pushed - 1].density();
            let mut leftover = (room + freed).saturating_sub(entrant.size);
            for next in followers {
                if leftover == 0 || next.density() <= bar {
                    break;
                }
                if next.size <= leftover && may_enter(next.value, next.day_rate) {
                    leftover -= next.size;
                    value += next.value;
                    variance += next.variance;
                    entrants += 1.0;
                }
            }
        }
        // A swap must gain beyond the noise of the values it compares: one standard
        // deviation of their difference.
        let noise = if pushed > 0 {
            (variance + pushed_variance).sqrt()
        } else {
            0.0
        };
        if (value - pushed_value - noise) * stays <= ENTRY_COST_ACCESSES * entrants {
            return Err(Refusal::NoGain);
        }
        if budgeted && !self.pace.budget.allows(bytes) {
            return Err(Refusal::Unfit);
        }
        if budgeted {
            self.pace.budget.spend(bytes);
        }
        self.pace.turnover.enter(to, entrant.size);
        let mut moves = Vec::with_capacity(pushed + 1);
        let evicted: Vec<Resident<K>> = self.tiers[to].residents.drain(..pushed).collect();
        for resident in evicted {
            let down = self.room_below(to, resident.size, resident.coldest);
            self.tiers[to].used -= resident.size;
            self.tiers[down].used += resident.size;
            self.pace.turnover.enter(down, resident.size);
            moves.push(Placed {
                key: resident.key,
                from: to,
                to: down,
                size: resident.size,
                value: resident.value,
                reason: MoveReason::CapacityRebalance,
            });
        }
        let source = &mut self.tiers[from];
        source.used = source.used.saturating_sub(entrant.size);
        if source.limit.capacity.is_some() {
            // It leaves: no longer there to be pushed out by another.
            source.residents.retain(|r| r.key != entrant.key);
        }
        self.tiers[to].used += entrant.size;
        if entrant.coldest > to {
            self.tiers[to].residents.push(entrant.clone());
        }
        moves.push(Placed {
            key: entrant.key.clone(),
            from,
            to,
            size: entrant.size,
            value: entrant.value,
            reason,
        });
        Ok(moves)
    }

    /// Where an object of `size` pushed out of tier `tier` goes: the hottest colder tier
    /// with room for it, else the coldest, no colder than `coldest`.
    fn room_below(&self, tier: usize, size: u64, coldest: usize) -> usize {
        let coldest = coldest.min(self.tiers.len() - 1);
        (tier + 1..coldest)
            .find(|&t| {
                let t = &self.tiers[t];
                t.limit
                    .fill_limit()
                    .is_none_or(|limit| t.used + size <= limit)
            })
            .unwrap_or(coldest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bounded(capacity: u64) -> TierLimit {
        TierLimit {
            capacity: Some(capacity),
            headroom: 0.0,
            floor: None,
        }
    }

    const H: i64 = 3_600_000;
    /// No budget limit, no turnover yet.
    fn free() -> Pace {
        Pace::new(None)
    }

    const UNBOUNDED: TierLimit = TierLimit {
        capacity: None,
        headroom: 0.0,
        floor: None,
    };

    /// An object of `value` over the next horizon, and no accesses over the last day
    /// to bear it out beyond that horizon.
    fn object(key: &'static str, tier: usize, size: u64, value: f64) -> Candidate<&'static str> {
        Candidate {
            key,
            tier,
            size,
            value,
            variance: value,
            day_rate: 0.0,
            moving_to: None,
            allowed: Allowed::ANY,
        }
    }

    /// An object read at the same rate, `value` per horizon, over the last day and the
    /// next horizon.
    fn steady(key: &'static str, tier: usize, size: u64, value: f64) -> Candidate<&'static str> {
        Candidate {
            day_rate: value,
            ..object(key, tier, size, value)
        }
    }

    fn moves(placed: &[Placed<&'static str>]) -> Vec<(&'static str, usize, usize)> {
        placed.iter().map(|p| (p.key, p.from, p.to)).collect()
    }

    #[test]
    fn the_densest_objects_fill_the_bounded_tier() {
        let limits = [bounded(100), UNBOUNDED];
        let (placed, standing) = Standing::plan(
            &limits,
            &[
                object("big", 1, 90, 50.0),
                object("small", 1, 10, 20.0),
                object("medium", 1, 50, 40.0),
                object("cold", 1, 1, 0.5),
            ],
            H,
            free(),
        );
        // small (2 per byte), medium (0.8), then big (0.56) does not fit; cold does
        // not pay for its way in and out.
        assert_eq!(moves(&placed), [("small", 1, 0), ("medium", 1, 0)]);
        assert_eq!(standing.used(0), 60);
        assert_eq!(standing.bar(0), Some(0.8));
        assert!(
            placed
                .iter()
                .all(|p| p.reason == MoveReason::ProactivePrediction)
        );
    }

    #[test]
    fn a_full_tier_pushes_out_its_least_dense_residents_only_when_it_pays() {
        let limits = [bounded(100), bounded(1000), UNBOUNDED];
        let residents = [object("a", 0, 50, 10.0), object("b", 0, 50, 30.0)];
        // Denser than a, but bringing fewer accesses than a takes away: it goes to the
        // next tier, which has room.
        let mut no_gain = residents.to_vec();
        no_gain.push(object("c", 2, 40, 9.0));
        assert_eq!(
            moves(&Standing::plan(&limits, &no_gain, H, free()).0),
            [("c", 2, 1)]
        );
        let mut much = residents.to_vec();
        much.push(object("c", 2, 50, 100.0));
        let (placed, standing) = Standing::plan(&limits, &much, H, free());
        assert_eq!(moves(&placed), [("a", 0, 1), ("c", 2, 0)]);
        assert_eq!(placed[0].reason, MoveReason::CapacityRebalance);
        assert_eq!((standing.used(0), standing.used(1)), (100, 50));
        // Never pushes out a denser resident, however much room it needs.
        let mut big = residents.to_vec();
        big.push(object("big", 2, 100, 50.0));
        assert_eq!(
            moves(&Standing::plan(&limits, &big, H, free()).0),
            [("big", 2, 1)]
        );
    }

    #[test]
    fn ties_of_density_go_by_key_whatever_order_the_candidates_come_in() {
        let limits = [bounded(100), UNBOUNDED];
        // Two cold residents of the same density, two entrants of the same density: of
        // each pair the higher key (the newer object) ranks higher, so it enters first
        // and leaves last.
        let candidates = [
            object("x-cold", 0, 50, 0.0),
            object("a-cold", 0, 50, 0.0),
            steady("y-hot", 1, 50, 40.0),
            steady("b-hot", 1, 50, 40.0),
        ];
        let mut reversed = candidates.to_vec();
        reversed.reverse();
        for input in [candidates.to_vec(), reversed] {
            let (placed, mut standing) = Standing::plan(&limits, &input, H, free());
            assert_eq!(
                moves(&placed),
                [
                    ("a-cold", 0, 1),
                    ("y-hot", 1, 0),
                    ("x-cold", 0, 1),
                    ("b-hot", 1, 0)
                ]
            );
            // A burst pushes out the lower key of the two equally dense residents.
            let burst = standing.admit(&"c-burst", 1, 50, 10_000, H, Allowed::ANY);
            assert_eq!(moves(&burst.unwrap()), [("b-hot", 0, 1), ("c-burst", 1, 0)]);
        }
    }

    #[test]
    fn rules_keep_objects_within_the_tiers_they_allow() {
        let limits = [bounded(100), bounded(1000), UNBOUNDED];
        let pinned = |c: Candidate<&'static str>, tier: usize| Candidate {
            allowed: Allowed {
                hottest: tier,
                coldest: tier,
            },
            ..c
        };
        // A pinned cold resident is not pushed out: the hot object goes to the next tier.
        let (placed, standing) = Standing::plan(
            &limits,
            &[
                pinned(object("pinned", 0, 100, 1.0), 0),
                object("hot", 2, 50, 100.0),
            ],
            H,
            free(),
        );
        assert_eq!(moves(&placed), [("hot", 2, 1)]);
        assert_eq!(standing.used(0), 100);
        // A ceiling keeps a hot object off the tiers above it.
        let capped = Candidate {
            allowed: Allowed {
                hottest: 1,
                coldest: usize::MAX,
            },
            ..object("capped", 2, 10, 100.0)
        };
        assert_eq!(
            moves(&Standing::plan(&limits, std::slice::from_ref(&capped), H, free()).0),
            [("capped", 2, 1)]
        );
        // A floor stops a resident pushed out at its tier, not the coldest.
        let floored = Candidate {
            allowed: Allowed {
                hottest: 0,
                coldest: 1,
            },
            ..object("floored", 0, 100, 1.0)
        };
        let (placed, _) = Standing::plan(
            &[bounded(100), bounded(50), UNBOUNDED],
            &[floored, object("hot", 2, 100, 500.0)],
            H,
            free(),
        );
        assert_eq!(moves(&placed), [("floored", 0, 1), ("hot", 2, 0)]);
        // A burst is admitted only where the rules allow.
        let mut standing = Standing::plan(&limits, &[], H, free()).1;
        let admitted = standing
            .admit(&"burst", 2, 10, 50, H / 10, capped.allowed)
            .unwrap();
        assert_eq!(moves(&admitted), [("burst", 2, 1)]);
    }

    #[test]
    fn a_promotion_from_a_bounded_tier_frees_its_room_for_the_next_tier_down() {
        let limits = [bounded(100), bounded(100), UNBOUNDED];
        let (placed, _) = Standing::plan(
            &limits,
            &[
                object("cold", 0, 100, 1.0),
                object("hot", 1, 100, 500.0),
                object("warm", 2, 100, 50.0),
            ],
            H,
            free(),
        );
        // hot takes cold's place on 0 (cold goes to 2: tier 1 is full until hot has
        // left), and warm takes the room hot leaves on 1.
        assert_eq!(
            moves(&placed),
            [("cold", 0, 2), ("hot", 1, 0), ("warm", 2, 1)]
        );
    }

    #[test]
    fn objects_with_moves_under_way_stay_and_keep_their_bytes() {
        let limits = [bounded(100), UNBOUNDED];
        let mut leaving = object("leaving", 0, 80, 0.0);
        leaving.moving_to = Some(1);
        let (placed, _) =
            Standing::plan(&limits, &[leaving, object("new", 1, 30, 100.0)], H, free());
        assert!(placed.is_empty(), "{placed:?}");
        // Bytes on their way in are held for them.
        let mut coming = object("coming", 1, 80, 0.0);
        coming.moving_to = Some(0);
        let (placed, _) =
            Standing::plan(&limits, &[coming, object("new", 1, 30, 100.0)], H, free());
        assert!(placed.is_empty(), "{placed:?}");
    }

    #[test]
    fn headroom_is_left_to_bursts_and_floors_hold() {
        let mut limit = bounded(100);
        limit.headroom = 0.2;
        let limits = [limit, UNBOUNDED];
        let (placed, mut standing) = Standing::plan(
            &limits,
            &[object("a", 1, 50, 10.0), object("b", 1, 40, 7.0)],
            H,
            free(),
        );
        assert_eq!(
            moves(&placed),
            [("a", 1, 0)],
            "b would cut into the headroom"
        );
        // A burst may use the headroom: 50 in a tenth of the horizon is 500 over it.
        let admitted = standing
            .admit(&"burst", 1, 40, 50, H / 10, Allowed::ANY)
            .unwrap();
        assert_eq!(moves(&admitted), [("burst", 1, 0)]);
        assert_eq!(admitted[0].reason, MoveReason::ReactiveAccessSpike);
        // The next one pushes out the least dense resident: a.
        let admitted = standing
            .admit(&"again", 1, 50, 90, H / 10, Allowed::ANY)
            .unwrap();
        assert_eq!(moves(&admitted), [("a", 0, 1), ("again", 1, 0)]);
        // A burst no denser than the bar is not admitted.
        assert!(standing.admit(&"weak", 1, 50, 3, H, Allowed::ANY).is_none());
        let floored = [
            TierLimit {
                floor: Some(20.0),
                ..bounded(100)
            },
            UNBOUNDED,
        ];
        assert!(
            Standing::plan(&floored, &[object("a", 1, 1, 15.0)], H, free())
                .0
                .is_empty()
        );
    }

    #[test]
    fn a_run_moves_no_more_than_its_budget() {
        let limits = [bounded(100), UNBOUNDED];
        // The tier is full of cold residents; each swap moves 80 bytes.
        let objects = [
            object("cold1", 0, 50, 1.0),
            object("cold2", 0, 50, 1.0),
            object("a", 1, 30, 50.0),
            object("b", 1, 30, 40.0),
        ];
        let pace = Pace::new(Some(80)).at(0, 50);
        let (placed, standing) = Standing::plan(&limits, &objects, H, pace);
        // Of the two equally cold, the lower key (the older) goes first.
        assert_eq!(moves(&placed), [("cold1", 0, 1), ("a", 1, 0)]);
        assert!(
            placed.iter().all(|p| p.key != "b"),
            "b waits for the budget"
        );
        // Half an hour later, 40 bytes may move: not enough; an hour later, 80 are.
        let pace = standing.pace().clone().at(H / 2, 50);
        let rest = [
            object("cold2", 0, 50, 1.0),
            object("a", 0, 30, 50.0),
            object("b", 1, 30, 40.0),
        ];
        assert!(Standing::plan(&limits, &rest, H, pace.clone()).0.is_empty());
        let (placed, _) = Standing::plan(&limits, &rest, H, pace.at(H, 50));
        assert_eq!(moves(&placed), [("cold2", 0, 1), ("b", 1, 0)]);
        // Free room is filled whatever the budget.
        let (placed, _) = Standing::plan(&limits, &objects[2..], H, Pace::new(Some(0)));
        assert_eq!(placed.len(), 2);
        // An object larger than an hour's budget still moves once the bucket is full.
        let mut big = MoveBudget::new(Some(10));
        big.fill(0, 30);
        big.fill(H * 5, 30);
        assert!(big.allows(30));
    }

    #[test]
    fn a_one_off_access_is_never_worth_a_move() {
        let limits = [bounded(1_000_000), UNBOUNDED];
        let (placed, mut standing) =
            Standing::plan(&limits, &[object("scanned", 1, 1, 1.0)], H, free());
        assert!(placed.is_empty());
        assert!(
            standing
                .admit(&"scanned", 1, 1, 1, H, Allowed::ANY)
                .is_none()
        );
    }

    #[test]
    fn a_swap_must_pay_within_the_stay_the_tiers_turnover_allows() {
        let limits = [bounded(100), UNBOUNDED];
        // c brings 3.8 accesses an hour more than a takes away, 1.75 beyond their noise
        // over an hour (the square root of 4.2); its way in and out costs 2.
        let objects = [
            steady("a", 0, 50, 0.2),
            steady("b", 0, 50, 30.0),
            steady("c", 1, 50, 4.0),
        ];
        // Nothing entered lately: c can be expected to stay a day, and pays.
        let (placed, _) = Standing::plan(&limits, &objects, H, free());
        assert_eq!(moves(&placed), [("a", 0, 1), ("c", 1, 0)]);
        // The tier turned over 24 times in the last day: an entrant stays about an
        // hour, in which c does not pay.
        let mut churned = free();
        churned.turnover.enter(0, 24 * 100);
        let (placed, _) = Standing::plan(&limits, &objects, H, churned.clone());
        assert!(placed.is_empty(), "{placed:?}");
        // A day later that turnover counts for e times less: c stays 2.7 hours, long
        // enough again.
        churned.turnover.decay(0);
        let (placed, standing) = Standing::plan(&limits, &objects, H, churned.at(DAY_MS, 0));
        assert_eq!(moves(&placed), [("a", 0, 1), ("c", 1, 0)]);
        // The moves made count as turnover of both tiers.
        let entered = &standing.pace().turnover.entered;
        assert!((entered[0] - (2400.0 / std::f64::consts::E + 50.0)).abs() < 1e-6);
        assert_eq!(entered[1], 50.0);
    }

    #[test]
    fn a_gain_within_the_noise_of_the_values_is_no_reason_to_swap() {
        let limits = [bounded(100), UNBOUNDED];
        let resident = object("a", 0, 100, 100.0);
        // 10 more than a, within one standard deviation of a count of 210 (14.5).
        let (placed, _) = Standing::plan(
            &limits,
            &[resident.clone(), object("c", 1, 100, 110.0)],
            H,
            free(),
        );
        assert!(placed.is_empty(), "{placed:?}");
        // 30 more, beyond the 15.2 of a count of 230.
        let (placed, _) =
            Standing::plan(&limits, &[resident, object("c", 1, 100, 130.0)], H, free());
        assert_eq!(moves(&placed), [("a", 0, 1), ("c", 1, 0)]);
    }

    #[test]
    fn the_noise_of_a_swap_is_that_of_the_estimates_it_compares() {
        let limits = [bounded(100), UNBOUNDED];
        // Long-run means of steady streams, each known to within a standard deviation
        // of 1: 10 more is a gain well beyond their noise.
        let precise = |c: Candidate<&'static str>| Candidate { variance: 1.0, ..c };
        let (placed, _) = Standing::plan(
            &limits,
            &[
                precise(object("a", 0, 100, 100.0)),
                precise(object("c", 1, 100, 110.0)),
            ],
            H,
            free(),
        );
        assert_eq!(moves(&placed), [("a", 0, 1), ("c", 1, 0)]);
    }

    #[test]
    fn one_large_resident_makes_way_for_many_small_denser_objects() {
        let limits = [bounded(100), UNBOUNDED];
        let mut objects = vec![object("large", 0, 100, 40.0)];
        // Each brings a quarter of what the large one takes away, in a tenth of its
        // room: none pays for the swap alone, all ten together do.
        let small = ["s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9"];
        objects.extend(small.iter().map(|&key| object(key, 1, 10, 10.0)));
        let (placed, standing) = Standing::plan(&limits, &objects, H, free());
        assert_eq!(
            placed[0],
            Placed {
                key: "large",
                from: 0,
                to: 1,
                size: 100,
                value: 40.0,
                reason: MoveReason::CapacityRebalance,
            }
        );
        assert_eq!(placed.len(), 11, "{placed:?}");
        assert!(placed[1..].iter().all(|p| p.to == 0 && p.from == 1));
        assert_eq!(standing.used(0), 100);
        // Three of them bring less than the large one takes away: nothing moves.
        let (placed, _) = Standing::plan(&limits, &objects[..4], H, free());
        assert!(placed.is_empty(), "{placed:?}");
    }

    #[test]
    fn a_place_must_be_borne_out_by_the_last_day() {
        let limits = [bounded(100), UNBOUNDED];
        // Read once over the last day (a scan's read), and a tenth of an access expected
        // next hour: 2.4 over a day's stay at that rate, but about one at what the day
        // bears out, short of its way in and out. Read a fifth of a time every hour:
        // five over the day, and it takes the free room.
        let scanned = Candidate {
            day_rate: 1.0 / 24.0,
            ..object("scanned", 1, 10, 0.1)
        };
        let (placed, _) =
            Standing::plan(&limits, &[scanned, steady("tail", 1, 10, 0.2)], H, free());
        assert_eq!(moves(&placed), [("tail", 1, 0)]);
        assert!(!may_pay(0.1, 1.0 / 24.0, H) && may_pay(0.2, 0.2, H));
    }
}
