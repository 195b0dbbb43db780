//! One simulated policy: where each object is, its detector, forecaster and mover, and
//! what it did over the scored part.

use std::collections::VecDeque;

use crate::config::Config;
use crate::db::{DAY_MS, HOUR_MS, MoveReason, TrackedObject};
use crate::detector::{Detector, Spike};
use crate::forecast::{TrackedId, Tracker};
use crate::policy::Bounds;
use crate::policy::placement::{Candidate, Placed, Standing, may_pay};
use crate::policy::rules::{Allowed, RuleSet, Subject};

use super::objects::{Context, Env, NEVER, Objects, REASONS, reason_index};
use super::report::{Cost, MoveCount, PolicyReport, TierServed, TimeToHot, bytes_gb, ratio};
use super::{MovesOut, PolicyKind};

/// In `object_of`, a tracker id no object of the trace has.
const NOT_HERE: u32 = u32::MAX;

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
    /// The object's tier: it stays there while the move waits.
    pub(super) from: u8,
    pub(super) to: u8,
    pub(super) reason: MoveReason,
}

/// The moves waiting for the mover, by reason, and how many of them leave each tier.
#[derive(Debug)]
pub(super) struct MoveQueue {
    by_reason: [VecDeque<Queued>; REASONS.len()],
    /// Per tier, the waiting moves out of it.
    leaving: Vec<u32>,
}

impl MoveQueue {
    fn new(tiers: usize) -> MoveQueue {
        MoveQueue {
            by_reason: Default::default(),
            leaving: vec![0; tiers],
        }
    }

    /// Adds `queued` after the others of its reason.
    fn push_back(&mut self, queued: Queued) {
        self.leaving[usize::from(queued.from)] += 1;
        self.by_reason[reason_index(queued.reason)].push_back(queued);
    }

    /// Puts `queued` back before the others of its reason.
    fn push_front(&mut self, queued: Queued) {
        self.leaving[usize::from(queued.from)] += 1;
        self.by_reason[reason_index(queued.reason)].push_front(queued);
    }

    /// Takes the first move of the most urgent reason.
    fn pop_front(&mut self) -> Option<Queued> {
        let queued = self.by_reason.iter_mut().find_map(VecDeque::pop_front)?;
        self.leaving[usize::from(queued.from)] -= 1;
        Some(queued)
    }

    /// Whether a waiting move leaves `tier`, making room there.
    fn leaves(&self, tier: u8) -> bool {
        self.leaving[usize::from(tier)] > 0
    }
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

/// The objects a run of ranked placement ranks, kept from run to run: the candidate of
/// every object in play at the last run, and the objects whose tier, move or value
/// changed since, whose candidates the next run makes afresh. An object out of play
/// comes back only by such a change ([`Policy::in_play`] rises with the value), and an
/// unchanged one's candidate is the same as a run would make it, so a run looks at
/// nothing else: most objects of a long trace sit cold on a tier without a capacity, and
/// most in play do not change between two runs within an hour. The candidates are kept
/// in the order residents are pushed out in, so that ranking them again costs little
/// more than a pass (a run's outcome does not depend on their order: ranking breaks
/// ties by key).
///
/// [`Policy::in_play`]: crate::policy::Policy::in_play
#[derive(Debug, Default)]
pub(super) struct InPlay {
    /// The candidates as of the last run, in push order.
    candidates: Vec<Candidate<u32>>,
    /// The objects changed since the last run, each once.
    changed: Vec<u32>,
    /// Whether each object is listed in `changed`.
    marked: Vec<bool>,
    /// Whether each object was in play at the last run.
    held: Vec<bool>,
}

impl InPlay {
    /// Marks `o` changed (once, however often).
    fn mark(&mut self, o: u32) {
        if !std::mem::replace(flag(&mut self.marked, o), true) {
            self.changed.push(o);
        }
    }

    /// Whether `o` was in play at the last run.
    fn holds(&self, o: u32) -> bool {
        self.held.get(o as usize) == Some(&true)
    }

    /// Makes the candidate of every changed object afresh with `make` (of every object
    /// when `all`: one whose candidate changes without a mark), `None` taking it out of
    /// play; the candidates as they then are, in push order.
    fn refresh(
        &mut self,
        all: bool,
        mut make: impl FnMut(u32) -> Option<Candidate<u32>>,
    ) -> &[Candidate<u32>] {
        if all {
            for i in 0..self.candidates.len() {
                self.mark(self.candidates[i].key);
            }
        }
        let marked = &self.marked;
        self.candidates
            .retain(|c| marked.get(c.key as usize) != Some(&true));
        let mut changed = std::mem::take(&mut self.changed);
        for &o in &changed {
            self.marked[o as usize] = false;
            let candidate = make(o);
            *flag(&mut self.held, o) = candidate.is_some();
            self.candidates.extend(candidate);
        }
        changed.clear();
        self.changed = changed;
        // The unchanged ones are in order still: a stable sort merges the others in.
        self.candidates.sort_by(Candidate::push_order);
        &self.candidates
    }
}

/// Object `o`'s flag in `flags`, grown to hold it.
fn flag(flags: &mut Vec<bool>, o: u32) -> &mut bool {
    let i = o as usize;
    if flags.len() <= i {
        flags.resize(i + 1, false);
    }
    &mut flags[i]
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
    /// Each tracked object by its tracker id's index.
    pub(super) object_of: Vec<u32>,
    pub(super) tier: Vec<u8>,
    pub(super) moving: Vec<bool>,
    /// Where the object's move under way takes it, while `moving`.
    pub(super) moving_to: Vec<u8>,
    /// When the object's current hot episode started, while it is not hot-tier resident.
    pub(super) waiting_hot: Vec<i64>,
    pub(super) tiers: Vec<TierUse>,
    pub(super) queue: MoveQueue,
    pub(super) running: Option<Running>,
    /// The last forecaster run's placement, when tiers are filled by rank.
    pub(super) standing: Option<Standing<u32>>,
    /// The objects the next run of ranked placement ranks.
    pub(super) in_play: InPlay,
    /// The objects the last forecaster run valued by a burst: their value falls back
    /// in the next unless it sees the burst again.
    pub(super) bursting: Vec<u32>,
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
            object_of: Vec::new(),
            tier: Vec::new(),
            moving: Vec::new(),
            moving_to: Vec::new(),
            waiting_hot: Vec::new(),
            tiers: vec![TierUse::default(); tiers],
            queue: MoveQueue::new(tiers),
            running: None,
            standing,
            in_play: InPlay::default(),
            bursting: Vec::new(),
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
        self.in_play.mark(o);
        let tier = &mut self.tiers[usize::from(rank)];
        tier.settle(now, context.scored_from);
        tier.bytes += size;
        if let Some(tracker) = self.tracker.as_mut() {
            let id = tracker.observe_object(TrackedObject {
                id: objects.ids[o as usize].to_string(),
                tier: context.tier_names[usize::from(rank)].clone(),
                updated_at: now,
                created_at: now,
                size_bytes: size,
            });
            if self.object_of.len() <= id.index() {
                self.object_of.resize(id.index() + 1, NOT_HERE);
            }
            self.object_of[id.index()] = o;
            self.tracked.push(id);
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
    /// knows them (those yet to appear are marked when they do).
    pub(super) fn foresee(&mut self, objects: &[u32]) {
        if self.kind.knows_the_future() {
            for &o in objects.iter().filter(|&&o| (o as usize) < self.tier.len()) {
                self.in_play.mark(o);
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
        allowed_by(self.rules(env.context), i, now, env.objects)
    }

    /// The rules it keeps to, if any.
    fn rules<'a>(&self, context: &Context<'a>) -> Option<&'a RuleSet> {
        context.rules.filter(|_| self.with_rules)
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
        let (kind, tracked) = (self.kind, &self.tracked);
        let (tier, moving, moving_to) = (&self.tier, &self.moving, &self.moving_to);
        let rules = self.rules(context);
        // Rules change with time, and so does the future read ahead: every candidate
        // may change.
        let all = rules.is_some() || kind.knows_the_future();
        let make = |o: u32| {
            let i = o as usize;
            let tier = usize::from(tier[i]);
            // The diagnostic row knows the coming horizon, and the coming day stands
            // for the last one.
            let (value, variance, day_rate) = match (tracker, tracked.get(i)) {
                _ if kind.knows_the_future() => (
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
            let moving_to = moving[i].then(|| usize::from(moving_to[i]));
            context
                .policy
                .in_play(tier, moving_to, value, day_rate, context.horizon_ms)
                .then(|| Candidate {
                    key: o,
                    tier,
                    size: objects.size[i],
                    value,
                    variance,
                    day_rate,
                    moving_to,
                    allowed: allowed_by(rules, i, now, objects),
                })
        };
        let candidates = self.in_play.refresh(all, make);
        // Test builds check that the candidates kept are those every object would make.
        if cfg!(debug_assertions) {
            let mut kept = candidates.to_vec();
            kept.sort_by_key(|c| c.key);
            let afresh: Vec<_> = (0..tier.len() as u32).filter_map(make).collect();
            assert!(
                kept == afresh,
                "candidates kept differ from those made afresh at {now}"
            );
        }
        let (moves, standing) =
            context
                .policy
                .place(candidates, context.horizon_ms, now, self.standing.as_ref());
        self.standing = Some(standing);
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
        for o in self.bursting.drain(..) {
            self.in_play.mark(o);
        }
        // A forecast object's value changed: for a candidate, and for one out of play
        // that may now pay its way (of `Policy::in_play`, only that can newly hold: those
        // on or moving to a tier with a capacity are candidates already).
        for f in &forecasts {
            let Some(&o) = self.object_of.get(f.id.index()).filter(|&&o| o != NOT_HERE) else {
                continue;
            };
            if self.in_play.holds(o) || may_pay(f.value, f.day_rate, context.horizon_ms) {
                self.in_play.mark(o);
            }
            if f.value > f.predicted {
                self.bursting.push(o);
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
        self.in_play.mark(o);
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
        self.queue.push_back(Queued {
            object: o,
            from: self.tier[i],
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
            let Some(next) = self.queue.pop_front() else {
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
                if self.queue.leaves(next.to) {
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
            self.queue.push_front(queued);
        }
    }

    /// A queued move that cannot start for lack of room is dropped.
    pub(super) fn refuse(&mut self, queued: Queued, now: i64, context: &Context<'_>) {
        self.moving[queued.object as usize] = false;
        self.in_play.mark(queued.object);
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
        self.in_play.mark(done.object);
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

/// The tiers `rules` allow object `i` on at `now` (every tier without rules).
fn allowed_by(rules: Option<&RuleSet>, i: usize, now: i64, objects: &Objects) -> Allowed {
    let Some(rules) = rules else {
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

/// Hours in the month that storage prices are quoted for (365 × 24 / 12).
pub(super) const HOURS_PER_MONTH: f64 = 730.0;

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(key: u32, value: f64) -> Candidate<u32> {
        Candidate {
            key,
            tier: 1,
            size: 1,
            value,
            variance: value,
            day_rate: 0.0,
            moving_to: None,
            allowed: Allowed::ANY,
        }
    }

    /// A run of `in_play` that values object `o` at `value(o)`, out of play at 0: which
    /// objects it made afresh, and the candidates it then ranked.
    fn run(
        in_play: &mut InPlay,
        all: bool,
        value: impl Fn(u32) -> f64,
    ) -> (Vec<u32>, Vec<(u32, f64)>) {
        let mut made = Vec::new();
        let candidates = in_play.refresh(all, |o| {
            made.push(o);
            (value(o) > 0.0).then(|| candidate(o, value(o)))
        });
        (made, candidates.iter().map(|c| (c.key, c.value)).collect())
    }

    #[test]
    fn a_run_makes_afresh_only_the_candidates_of_changed_objects() {
        let mut in_play = InPlay::default();
        for o in [7, 2, 9, 2, 4] {
            in_play.mark(o);
        }
        // Each changed object once; 4 is out of play. In push order: the least dense
        // first, of equal density the lowest key.
        let first = |o: u32| match o {
            4 => 0.0,
            9 => 0.5,
            _ => 1.0,
        };
        let (made, ranked) = run(&mut in_play, false, first);
        assert_eq!(made, [7, 2, 9, 4]);
        assert_eq!(ranked, [(9, 0.5), (2, 1.0), (7, 1.0)]);
        assert!(in_play.holds(9) && !in_play.holds(4));
        // Unchanged candidates stay as they were made, whatever the values say now;
        // a changed one out of play leaves, and one newly in play joins.
        in_play.mark(7);
        in_play.mark(4);
        let (made, ranked) = run(&mut in_play, false, |o| if o == 7 { 0.0 } else { 0.8 });
        assert_eq!(made, [7, 4]);
        assert_eq!(ranked, [(9, 0.5), (4, 0.8), (2, 1.0)]);
        assert!(!in_play.holds(7) && in_play.holds(4));
        // Every candidate made afresh when asked, and nothing when nothing changed.
        let (made, ranked) = run(&mut in_play, true, |o| f64::from(10 - o));
        assert_eq!(made, [9, 4, 2]);
        assert_eq!(ranked, [(9, 1.0), (4, 6.0), (2, 8.0)]);
        assert_eq!(run(&mut in_play, false, |_| 5.0), (vec![], ranked));
    }

    #[test]
    fn the_queue_knows_which_tiers_its_waiting_moves_leave() {
        let queued = |object, from, reason| Queued {
            object,
            from,
            to: 0,
            reason,
        };
        let mut queue = MoveQueue::new(3);
        queue.push_back(queued(1, 2, MoveReason::ProactivePrediction));
        queue.push_back(queued(2, 1, MoveReason::ReactiveAccessSpike));
        assert!(queue.leaves(1) && queue.leaves(2) && !queue.leaves(0));
        // The most urgent reason first; a move taken out no longer counts until put back.
        let first = queue.pop_front().unwrap();
        assert_eq!(first.object, 2);
        assert!(!queue.leaves(1));
        queue.push_front(first);
        assert!(queue.leaves(1));
        assert_eq!(queue.pop_front().unwrap().object, 2);
        assert_eq!(queue.pop_front().unwrap().object, 1);
        assert!(queue.pop_front().is_none() && !queue.leaves(2));
    }
}
