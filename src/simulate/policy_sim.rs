//! One simulated policy: where each object is, its detector, forecaster and mover, and
//! what it did over the scored part.

use std::collections::VecDeque;

use crate::config::Config;
use crate::db::{DAY_MS, HOUR_MS, MoveReason, TrackedObject};
use crate::detector::{Detector, Spike};
use crate::forecast::{TrackedId, Tracker};
use crate::policy::Bounds;
use crate::policy::placement::{Candidate, Placed, Standing, may_pay};
use crate::policy::rules::{Allowed, Subject};

use super::objects::{Context, Env, NEVER, REASONS, reason_index};
use super::report::{Cost, MoveCount, PolicyReport, TierServed, TimeToHot, bytes_gb, ratio};
use super::{MovesOut, PolicyKind};

/// Bytes on one tier over time.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct TierUse {
    pub(super) bytes: u64,
    /// Bytes of moves under way into the tier.
    pub(super) reserved: u64,
    /// Bytes times milliseconds resident in the scored part.
    pub(super) byte_ms: f64,
    pub(super) since: i64,
}

impl TierUse {
    /// Accounts for the bytes resident from the last change until `now`.
    pub(super) fn settle(&mut self, now: i64, scored_from: i64) {
        let from = self.since.max(scored_from);
        if now > from {
            self.byte_ms += self.bytes as f64 * (now - from) as f64;
        }
        self.since = self.since.max(now);
    }
}

/// A move waiting for the mover.
#[derive(Debug, Clone, Copy)]
pub(super) struct Queued {
    pub(super) object: u32,
    pub(super) to: u8,
    pub(super) reason: MoveReason,
}

/// The move the mover is running.
#[derive(Debug, Clone, Copy)]
pub(super) struct Running {
    pub(super) object: u32,
    pub(super) from: u8,
    pub(super) to: u8,
    pub(super) reason: MoveReason,
    pub(super) done_at: i64,
}

/// The objects a run of ranked placement looks at: every one in play at the last run,
/// and every one whose tier, move or value rose since. An object out of play comes back
/// only by such a change ([`Policy::in_play`] rises with the value), so a run skips the
/// rest: most objects of a long trace sit cold on a tier without a capacity. A run's
/// outcome does not depend on the order it looks at them in (ranking breaks ties by
/// key); they come the last run's residents first, in the order it ranked them, so
/// that sorting them again costs little more than a pass.
///
/// [`Policy::in_play`]: crate::policy::Policy::in_play
#[derive(Debug, Default)]
pub(super) struct Watched {
    /// Those the last run kept, then those added since.
    list: Vec<u32>,
    /// The list the last run looked at, kept for its memory.
    spare: Vec<u32>,
    /// The run each object was last watched for: watched when it is `run`'s.
    marked: Vec<u32>,
    /// The run each object was last put at the head of `list` for.
    led: Vec<u32>,
    run: u32,
}

impl Watched {
    /// Watches `o` (once, however often it is added).
    fn add(&mut self, o: u32) {
        let run = self.run + 1;
        if std::mem::replace(stamp(&mut self.marked, o), run) != run {
            self.list.push(o);
        }
    }

    /// The watched objects, none watched any more; the run [`Watched::add`]s those
    /// still in play again and hands the list back.
    fn take(&mut self) -> Vec<u32> {
        self.run += 1;
        std::mem::replace(&mut self.list, std::mem::take(&mut self.spare))
    }

    /// Puts the objects the run kept that are among `first` at the head of the list, in
    /// that order.
    fn lead_with(&mut self, first: impl Iterator<Item = u32>) {
        let run = self.run + 1;
        let head = &mut self.spare;
        for o in first {
            if self.marked.get(o as usize) == Some(&run)
                && std::mem::replace(stamp(&mut self.led, o), run) != run
            {
                head.push(o);
            }
        }
        let led = &self.led;
        head.extend(
            self.list
                .iter()
                .filter(|&&o| led.get(o as usize) != Some(&run)),
        );
        std::mem::swap(head, &mut self.list);
        head.clear();
    }

    /// Hands back the list [`Watched::take`] gave.
    fn give_back(&mut self, mut list: Vec<u32>) {
        list.clear();
        self.spare = list;
    }
}

/// Object `o`'s place in `stamps`, grown to hold it.
fn stamp(stamps: &mut Vec<u32>, o: u32) -> &mut u32 {
    let i = o as usize;
    if stamps.len() <= i {
        stamps.resize(i + 1, 0);
    }
    &mut stamps[i]
}

/// What one policy did, summed over the scored part.
#[derive(Debug, Clone, Default)]
pub(super) struct Stats {
    pub(super) served: Vec<u64>,
    pub(super) read_bytes: Vec<u64>,
    pub(super) moved_out_bytes: Vec<u64>,
    pub(super) moves: [(u64, u64); REASONS.len()],
    pub(super) refused: u64,
    pub(super) episodes: u64,
    pub(super) reached: u64,
    pub(super) wait_ms: i64,
}

/// One policy's copy of the world: where each object is, its detector, forecaster and
/// mover.
pub(super) struct PolicySim {
    pub(super) kind: PolicyKind,
    /// Whether it keeps to the operator rules.
    pub(super) with_rules: bool,
    pub(super) detector: Option<Detector>,
    /// When the detector's earliest settling burst is due.
    pub(super) next_due: Option<i64>,
    pub(super) tracker: Option<Tracker>,
    /// Each object's id in the tracker, when there is one.
    pub(super) tracked: Vec<TrackedId>,
    pub(super) tier: Vec<u8>,
    pub(super) moving: Vec<bool>,
    /// Where the object's move under way takes it, while `moving`.
    pub(super) moving_to: Vec<u8>,
    /// When the object's current hot episode started, while it is not hot-tier resident.
    pub(super) waiting_hot: Vec<i64>,
    pub(super) tiers: Vec<TierUse>,
    pub(super) queue: [VecDeque<Queued>; REASONS.len()],
    pub(super) running: Option<Running>,
    /// The last forecaster run's placement, when tiers are filled by rank.
    pub(super) standing: Option<Standing<u32>>,
    /// The objects the next run of ranked placement looks at.
    pub(super) watched: Watched,
    /// The last run's candidates, kept for their memory: a run over a large catalogue
    /// would otherwise fault in fresh pages for them every time.
    pub(super) candidates: Vec<Candidate<u32>>,
    pub(super) stats: Stats,
}

impl PolicySim {
    pub(super) fn new(
        kind: PolicyKind,
        with_rules: bool,
        config: &Config,
        context: &Context<'_>,
        start_ms: i64,
    ) -> PolicySim {
        let tiers = context.tier_names.len();
        // The service's first run, at its start, places an empty catalogue: bursts are
        // admitted against the tiers' capacities from then on.
        let standing = context.policy.is_ranked().then(|| {
            context
                .policy
                .place(&[], context.horizon_ms, start_ms, None)
                .1
        });
        PolicySim {
            kind,
            with_rules,
            detector: kind
                .reacts()
                .then(|| Detector::new(&config.detector, &context.policy.promotion_levels())),
            next_due: None,
            tracker: (kind.forecasts() && context.model.is_some()).then(|| Tracker::new(0)),
            tracked: Vec::new(),
            tier: Vec::new(),
            moving: Vec::new(),
            moving_to: Vec::new(),
            waiting_hot: Vec::new(),
            tiers: vec![TierUse::default(); tiers],
            queue: Default::default(),
            running: None,
            standing,
            watched: Watched::default(),
            candidates: Vec::new(),
            stats: Stats {
                served: vec![0; tiers],
                read_bytes: vec![0; tiers],
                moved_out_bytes: vec![0; tiers],
                ..Stats::default()
            },
        }
    }

    /// An object appears on the default tier, as an ingest puts it there.
    pub(super) fn create(&mut self, o: u32, size: u64, now: i64, env: Env<'_, '_>) {
        let Env { context, objects } = env;
        let rank = context.default_rank;
        self.tier.push(rank);
        self.moving.push(false);
        self.moving_to.push(rank);
        self.waiting_hot.push(NEVER);
        self.watched.add(o);
        let tier = &mut self.tiers[usize::from(rank)];
        tier.settle(now, context.scored_from);
        tier.bytes += size;
        if let Some(tracker) = self.tracker.as_mut() {
            self.tracked.push(tracker.observe_object(TrackedObject {
                id: objects.ids[o as usize].to_string(),
                tier: context.tier_names[usize::from(rank)].clone(),
                updated_at: now,
                created_at: now,
                size_bytes: size,
            }));
        }
    }

    /// Counts an access of `o` at `now` where the object is, and shows it to the
    /// detector.
    pub(super) fn access(
        &mut self,
        o: u32,
        now: i64,
        turned_hot: bool,
        env: Env<'_, '_>,
        out: &mut Option<MovesOut>,
    ) {
        let Env { context, objects } = env;
        let i = o as usize;
        let tier = usize::from(self.tier[i]);
        if now >= context.scored_from {
            self.stats.served[tier] += 1;
            self.stats.read_bytes[tier] += objects.size[i];
        }
        if turned_hot {
            self.stats.episodes += 1;
            // A new episode: one still waiting before it ended without the object
            // reaching the hot tier stays unreached.
            if tier == 0 {
                self.stats.reached += 1;
                self.waiting_hot[i] = NEVER;
            } else {
                self.waiting_hot[i] = now;
            }
        }
        let Some(detector) = self.detector.as_mut() else {
            return;
        };
        let spike = detector.observe(&objects.ids[i], now, 1, now);
        if self.next_due.is_none() {
            self.next_due = detector.next_due();
        }
        if let Some(spike) = spike {
            self.on_spike(&spike, now, env, out);
        }
    }

    /// Objects whose accesses read ahead rose: their value did, for the policy that
    /// knows them (those yet to appear are watched once they do).
    pub(super) fn foresee(&mut self, objects: &[u32]) {
        if self.kind.knows_the_future() {
            for &o in objects.iter().filter(|&&o| (o as usize) < self.tier.len()) {
                self.watched.add(o);
            }
        }
    }

    /// Lets the moves and settled bursts due by `now` happen, in time order.
    pub(super) fn advance(&mut self, now: i64, env: Env<'_, '_>, out: &mut Option<MovesOut>) {
        loop {
            let move_at = self.running.map(|r| r.done_at);
            let due_at = self.next_due;
            match (move_at, due_at) {
                (Some(m), d) if m <= now && d.is_none_or(|d| m <= d) => {
                    self.complete(m, env);
                }
                (_, Some(d)) if d <= now => {
                    let spikes = self.detector.as_mut().map(|det| det.due(d));
                    self.next_due = self.detector.as_ref().and_then(Detector::next_due);
                    for spike in spikes.into_iter().flatten() {
                        self.on_spike(&spike, d, env, out);
                    }
                }
                _ => return,
            }
        }
    }

    /// What `act_on_spike` does in the service: the moves the burst calls for, unless
    /// one of the object is under way.
    pub(super) fn on_spike(
        &mut self,
        spike: &Spike,
        now: i64,
        env: Env<'_, '_>,
        out: &mut Option<MovesOut>,
    ) {
        let Env { context, objects } = env;
        let Some(&o) = objects.index.get(spike.object_id.as_str()) else {
            return;
        };
        if self.moving[o as usize] {
            return;
        }
        let allowed = self.allowed(o as usize, now, env);
        let moves = context.policy.admit_burst(
            self.standing.as_mut(),
            &o,
            usize::from(self.tier[o as usize]),
            objects.size[o as usize],
            spike.recent,
            allowed,
        );
        self.enqueue_placed(&moves, now, env, out);
    }

    /// Its name in the report: the policy's, `+rules` when it keeps to the rules.
    fn name(&self) -> String {
        let rules = if self.with_rules { "+rules" } else { "" };
        format!("{}{rules}", self.kind.name())
    }

    /// The tiers the rules allow object `i` on at `now` (every tier without rules).
    fn allowed(&self, i: usize, now: i64, env: Env<'_, '_>) -> Allowed {
        let Env { context, objects } = env;
        let Some(rules) = context.rules.filter(|_| self.with_rules) else {
            return Allowed::ANY;
        };
        let subject = Subject {
            key: &objects.ids[i],
            // A trace has no content types: a rule that names one selects nothing here.
            content_type: "",
            size: objects.size[i],
            created_at: objects.created_ms[i],
            last_access_at: Some(objects.last_ms[i]),
        };
        rules
            .bound(&subject, now)
            .map_or(Allowed::ANY, |b| b.allowed)
    }

    /// A rules pass at `now`, as the service's rules job does it: every object not on a
    /// tier its rule allows, and with no move under way, is moved to the nearest that
    /// is.
    fn apply_rules(&mut self, now: i64, env: Env<'_, '_>, out: &mut Option<MovesOut>) {
        if !self.with_rules {
            return;
        }
        for i in 0..self.tier.len() {
            let tier = usize::from(self.tier[i]);
            let allowed = self.allowed(i, now, env);
            if self.moving[i] || allowed.allows(tier) {
                continue;
            }
            if let Ok(to) = u8::try_from(allowed.clamp(tier)) {
                self.enqueue(i as u32, to, MoveReason::Rule, now, env, out);
            }
        }
    }

    /// Queues `moves` in order, each if its object is still where it was seen.
    pub(super) fn enqueue_placed(
        &mut self,
        moves: &[Placed<u32>],
        now: i64,
        env: Env<'_, '_>,
        out: &mut Option<MovesOut>,
    ) {
        for placed in moves {
            let (Ok(from), Ok(to)) = (u8::try_from(placed.from), u8::try_from(placed.to)) else {
                continue;
            };
            if self.tier[placed.key as usize] == from {
                self.enqueue(placed.key, to, placed.reason, now, env, out);
            }
        }
    }

    /// Ranked placement at `now`, as the service's forecaster run does it: every object
    /// on a tier with a capacity, and every other one whose value could pay for a move,
    /// ranked by its value (0 without a forecaster: a reactive-only policy admits bursts
    /// against the tiers as they are).
    pub(super) fn place(&mut self, now: i64, env: Env<'_, '_>, out: &mut Option<MovesOut>) {
        let Env { context, objects } = env;
        if !context.policy.is_ranked() {
            return;
        }
        let tracker = self.tracker.as_ref();
        let mut candidates = std::mem::take(&mut self.candidates);
        candidates.clear();
        let watched = self.watched.take();
        for &o in &watched {
            let i = o as usize;
            let tier = usize::from(self.tier[i]);
            // The diagnostic row knows the coming horizon, and the coming day stands
            // for the last one.
            let (value, variance, day_rate) = match (tracker, self.tracked.get(i)) {
                _ if self.kind.knows_the_future() => (
                    f64::from(objects.future[i]),
                    f64::from(objects.future[i]),
                    f64::from(objects.future_day[i]) * context.horizon_ms as f64 / DAY_MS as f64,
                ),
                (Some(tracker), Some(&id)) => (
                    tracker.value(id),
                    tracker.variance(id),
                    tracker.day_rate(id),
                ),
                _ => (0.0, 0.0, 0.0),
            };
            let moving_to = self.moving[i].then(|| usize::from(self.moving_to[i]));
            if !context
                .policy
                .in_play(tier, moving_to, value, day_rate, context.horizon_ms)
            {
                continue;
            }
            self.watched.add(o);
            candidates.push(Candidate {
                key: o,
                tier,
                size: objects.size[i],
                value,
                variance,
                day_rate,
                moving_to,
                allowed: self.allowed(i, now, env),
            });
        }
        let (moves, standing) =
            context
                .policy
                .place(&candidates, context.horizon_ms, now, self.standing.as_ref());
        self.watched.give_back(watched);
        self.watched.lead_with(standing.residents().copied());
        self.standing = Some(standing);
        self.candidates = candidates;
        self.enqueue_placed(&moves, now, env, out);
    }

    /// A forecaster run at `now`, as `proactive_run` does it in the service: the
    /// tracker takes in the hour counts that changed, predicts, and the policy plans;
    /// each planned move is queued if the object is still where the plan saw it and
    /// has no move under way.
    pub(super) fn forecast(
        &mut self,
        now: i64,
        updates: &[(u32, i64, u32)],
        env: Env<'_, '_>,
        out: &mut Option<MovesOut>,
    ) {
        let Env { context, objects } = env;
        self.apply_rules(now, env, out);
        let (Some(tracker), Some(model)) = (self.tracker.as_mut(), context.model) else {
            if self.kind.reacts() || self.kind.knows_the_future() {
                self.place(now, env, out);
            }
            return;
        };
        for &(o, hour, hits) in updates {
            tracker.observe_hits(self.tracked[o as usize], hour, hits);
        }
        let forecasts = tracker.forecast(model, now);
        // Of `Policy::in_play`, only paying its way can newly hold for a forecast object:
        // those on or moving to a tier with a capacity are watched already.
        for f in &forecasts {
            if may_pay(f.value, f.day_rate, context.horizon_ms)
                && let Some(&o) = objects.index.get(f.object_id)
            {
                self.watched.add(o);
            }
        }
        let planned = context
            .policy
            .plan_proactive(&forecasts, now, &Bounds::default());
        self.place(now, env, out);
        for planned in planned {
            let Some(&o) = objects.index.get(planned.object_id.as_str()) else {
                continue;
            };
            let (Some(from), Some(to)) = (
                context.rank(&planned.from_tier),
                context.rank(&planned.to_tier),
            ) else {
                continue;
            };
            let allowed = self.allowed(o as usize, now, env);
            let Ok(to) = u8::try_from(allowed.clamp(usize::from(to))) else {
                continue;
            };
            if self.tier[o as usize] == from && to != from {
                self.enqueue(o, to, MoveReason::ProactivePrediction, now, env, out);
            }
        }
    }

    /// Queues a move of `o` to tier `to` for `reason`, unless one is under way.
    pub(super) fn enqueue(
        &mut self,
        o: u32,
        to: u8,
        reason: MoveReason,
        now: i64,
        env: Env<'_, '_>,
        out: &mut Option<MovesOut>,
    ) {
        let Env { context, objects } = env;
        let i = o as usize;
        if self.moving[i] {
            return;
        }
        self.moving[i] = true;
        self.moving_to[i] = to;
        self.watched.add(o);
        if let Some(out) = out.as_mut() {
            out.row(format_args!(
                "{},{now},{},{},{},{},{}\n",
                self.name(),
                objects.ids[i],
                context.tier_names[usize::from(self.tier[i])],
                context.tier_names[usize::from(to)],
                reason,
                objects.size[i]
            ));
        }
        self.queue[reason_index(reason)].push_back(Queued {
            object: o,
            to,
            reason,
        });
        if self.running.is_none() {
            self.start_next(now, env);
        }
    }

    /// Starts the most urgent queued move that fits its destination. One that does not
    /// fit waits, as the mover retries it, while a queued move out of its destination
    /// will make room; the others that do not fit are refused on the way, as the mover
    /// refuses them (and so is the first waiting one when nothing else can start, so
    /// that two moves waiting on each other cannot stall the queue).
    pub(super) fn start_next(&mut self, now: i64, env: Env<'_, '_>) {
        let Env { context, objects } = env;
        let mut waiting: Vec<Queued> = Vec::new();
        let started = loop {
            let Some(next) = self.queue.iter_mut().find_map(VecDeque::pop_front) else {
                break false;
            };
            let i = next.object as usize;
            let size = objects.size[i];
            let to = usize::from(next.to);
            let dest = &self.tiers[to];
            let fits = context.capacity[to].is_none_or(|cap| {
                dest.bytes
                    .saturating_add(dest.reserved)
                    .saturating_add(size)
                    <= cap
            });
            if !fits {
                let room_coming = self
                    .queue
                    .iter()
                    .flatten()
                    .any(|q| self.tier[q.object as usize] == next.to);
                if room_coming {
                    waiting.push(next);
                } else {
                    self.refuse(next, now, context);
                }
                continue;
            }
            self.tiers[to].reserved += size;
            let copy_ms = (u128::from(size) * 1000).div_ceil(u128::from(context.bandwidth));
            self.running = Some(Running {
                object: next.object,
                from: self.tier[i],
                to: next.to,
                reason: next.reason,
                done_at: now.saturating_add(i64::try_from(copy_ms).unwrap_or(i64::MAX)),
            });
            break true;
        };
        let mut waiting = waiting.into_iter();
        if !started && let Some(stuck) = waiting.next() {
            self.refuse(stuck, now, context);
        }
        for queued in waiting.rev() {
            self.queue[reason_index(queued.reason)].push_front(queued);
        }
    }

    /// A queued move that cannot start for lack of room is dropped.
    pub(super) fn refuse(&mut self, queued: Queued, now: i64, context: &Context<'_>) {
        self.moving[queued.object as usize] = false;
        if now >= context.scored_from {
            self.stats.refused += 1;
        }
    }

    /// The running move ends at `now`: the object switches tier.
    pub(super) fn complete(&mut self, now: i64, env: Env<'_, '_>) {
        let Env { context, objects } = env;
        let Some(done) = self.running.take() else {
            return;
        };
        let i = done.object as usize;
        let size = objects.size[i];
        let (from, to) = (usize::from(done.from), usize::from(done.to));
        for tier in [from, to] {
            self.tiers[tier].settle(now, context.scored_from);
        }
        self.tiers[from].bytes -= size;
        self.tiers[to].reserved -= size;
        self.tiers[to].bytes += size;
        self.tier[i] = done.to;
        self.moving[i] = false;
        self.watched.add(done.object);
        if now >= context.scored_from {
            let (count, bytes) = &mut self.stats.moves[reason_index(done.reason)];
            *count += 1;
            *bytes += size;
            self.stats.moved_out_bytes[from] += size;
        }
        if to == 0 && self.waiting_hot[i] != NEVER {
            if objects.still_hot(done.object, now) {
                self.stats.reached += 1;
                self.stats.wait_ms += now - self.waiting_hot[i];
            }
            self.waiting_hot[i] = NEVER;
        }
        if let Some(tracker) = self.tracker.as_mut() {
            tracker.observe_object(TrackedObject {
                id: objects.ids[i].to_string(),
                tier: context.tier_names[to].clone(),
                updated_at: now,
                created_at: objects.created_ms[i],
                size_bytes: size,
            });
        }
        self.start_next(now, env);
    }

    pub(super) fn report(
        &mut self,
        end_ms: i64,
        context: &Context<'_>,
        perfect: f64,
    ) -> PolicyReport {
        let stats = &self.stats;
        let accesses: u64 = stats.served.iter().sum();
        let mut tiers = Vec::new();
        let mut cost = Cost::default();
        for (rank, tier) in self.tiers.iter_mut().enumerate() {
            tier.settle(end_ms, context.scored_from);
            let prices = context.costs[rank];
            let gb_hours = tier.byte_ms / 1e9 / HOUR_MS as f64;
            let transfer_gb = bytes_gb(stats.read_bytes[rank] + stats.moved_out_bytes[rank]);
            let served = TierServed {
                tier: context.tier_names[rank].clone(),
                accesses: stats.served[rank],
                storage_gb_hours: gb_hours,
                storage_cost: gb_hours / HOURS_PER_MONTH * prices.storage_gb_month,
                reads_cost: stats.served[rank] as f64 / 1000.0 * prices.per_1k_reads,
                transfer_gb,
                transfer_cost: transfer_gb * prices.transfer_gb,
            };
            cost.add(&served);
            tiers.push(served);
        }
        let hot_hit_ratio = ratio(stats.served[0], accesses);
        PolicyReport {
            policy: self.name(),
            accesses,
            tiers,
            hot_hit_ratio,
            of_perfect: (perfect > 0.0).then(|| hot_hit_ratio / perfect),
            moves: REASONS
                .iter()
                .zip(stats.moves)
                .map(|(reason, (moves, bytes))| MoveCount {
                    reason: reason.as_str().to_string(),
                    moves,
                    bytes,
                })
                .collect(),
            refused_moves: stats.refused,
            time_to_hot: TimeToHot {
                episodes: stats.episodes,
                reached: stats.reached,
                mean_secs: (stats.reached > 0)
                    .then(|| stats.wait_ms as f64 / 1000.0 / stats.reached as f64),
            },
            cost,
        }
    }
}

/// Hours in the month that storage prices are quoted for (365 × 24 / 12).
pub(super) const HOURS_PER_MONTH: f64 = 730.0;

#[cfg(test)]
mod tests {
    use super::*;

    /// One run: every watched object in the order it comes; those in `keep` stay
    /// watched, `lead` first in the next run.
    fn run(watched: &mut Watched, keep: &[u32], lead: &[u32]) -> Vec<u32> {
        let list = watched.take();
        for &o in &list {
            if keep.contains(&o) {
                watched.add(o);
            }
        }
        let seen = list.clone();
        watched.give_back(list);
        watched.lead_with(lead.iter().copied());
        seen
    }

    #[test]
    fn watched_objects_come_once_each_until_a_run_drops_them_led_by_the_residents() {
        let mut watched = Watched::default();
        for o in [7, 2, 9, 2, 4] {
            watched.add(o);
        }
        assert_eq!(run(&mut watched, &[2, 9, 4], &[9, 3, 4, 9]), [7, 2, 9, 4]);
        // Kept ones led by the residents (one not kept is not watched), then the rest
        // kept, then ones added since; an object both kept and added comes once.
        for o in [5, 9, 1] {
            watched.add(o);
        }
        assert_eq!(run(&mut watched, &[2, 1], &[]), [9, 4, 2, 5, 1]);
        assert_eq!(run(&mut watched, &[], &[1]), [2, 1]);
        assert_eq!(run(&mut watched, &[], &[]), Vec::<u32>::new());
        watched.add(4);
        assert_eq!(run(&mut watched, &[4], &[]), [4]);
        assert_eq!(run(&mut watched, &[], &[]), [4]);
    }
}
