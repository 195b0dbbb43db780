//! The replay: every access of the trace, in order, through each selected policy.
//!
//! Virtual time is the trace's: an access at `ts_ms` first lets everything due by then
//! happen (moves finishing, settled bursts reported, forecaster runs every
//! `FORECAST_INTERVAL_SECS`), then counts. The policies call the service's own code:
//! [`Detector::observe`] and [`Detector::due`] with the access times as the clock,
//! [`Policy::admit_burst`] for a spike, the forecaster's [`Tracker`] fed the hourly
//! counts the catalogue would hold, [`Policy::plan_proactive`] and [`Policy::place`]
//! for its moves.
//!
//! Modelled, as the service does it: an object appears on the default tier at its first
//! access, with the size of that line; a move is refused while one of the same object
//! is under way, and refused at its start when it would overflow its destination's
//! `TIER_<NAME>_CAPACITY_BYTES`; moves run one at a time in the queue's priority order
//! (rebalance, reactive, proactive), each taking `size / bandwidth`; an access is served by
//! the tier holding the object at that moment, the source while a move is under way.
//! Left out: writes change neither size nor version (they count as accesses, as in
//! training), the mover's retries and verification reads, and the consumer's flush
//! delay (events reach the detector at their own time).

use std::collections::VecDeque;

use foldhash::HashMap;

use crate::config::{Config, SEED_PREDICT_ABOVE, TierCosts};
use crate::db::{HOUR_MS, MigrationReason, TrackedObject};
use crate::detector::{Detector, Spike};
use crate::forecast::trace::Access;
use crate::forecast::{Model, TrackedId, Tracker};
use crate::policy::Policy;
use crate::policy::placement::{Candidate, Placed, Standing};

use super::reference::{Foresight, Lru, best_static};
use super::report::{
    Cost, MoveCount, PolicyReport, ReferenceReport, TierServed, TimeToHot, bytes_gb,
};
use super::{MovesOut, PolicyKind, Trace};

/// "No time": an object not waiting to turn hot-tier resident.
const NEVER: i64 = i64::MIN;

/// Reasons the simulated policies move objects for, in queue priority order.
const REASONS: [MigrationReason; 3] = [
    MigrationReason::CapacityRebalance,
    MigrationReason::ReactiveAccessSpike,
    MigrationReason::ProactivePrediction,
];

/// The place of `reason` in [`REASONS`].
fn reason_index(reason: MigrationReason) -> usize {
    REASONS.iter().position(|&r| r == reason).unwrap_or(0)
}

/// Everything a replay is set up from.
pub(super) struct Setup<'a> {
    /// Tiers, capacities and costs, detector and forecaster settings.
    pub config: &'a Config,
    /// The policy `serve` would run with `config`.
    pub policy: &'a Policy,
    /// The policies to replay.
    pub kinds: &'a [PolicyKind],
    /// The model, when a policy forecasts.
    pub model: Option<&'a Model>,
    /// Bytes per second a move copies at.
    pub bandwidth: u64,
    /// Accesses from this time on are scored.
    pub scored_from: i64,
    /// The trace's first access.
    pub start_ms: i64,
    /// Where queued moves are written.
    pub moves_out: Option<MovesOut>,
    /// The trace again, read a horizon ahead for the policies that know the future.
    pub lookahead: Option<Trace>,
}

/// What a replay produced.
pub(super) struct Outcome {
    /// Distinct objects in the trace.
    pub objects: usize,
    /// Accesses in the scored part.
    pub scored_accesses: u64,
    /// One report per policy.
    pub policies: Vec<PolicyReport>,
    /// The reference placements.
    pub references: Vec<ReferenceReport>,
    /// How writing the moves file ended, when one was asked for.
    pub moves_written: Option<std::io::Result<()>>,
}

/// What is shared by every policy: the tiers and the clock's settings.
struct Context<'a> {
    policy: &'a Policy,
    model: Option<&'a Model>,
    tier_names: Vec<String>,
    capacity: Vec<Option<u64>>,
    costs: Vec<TierCosts>,
    default_rank: u8,
    bandwidth: u64,
    scored_from: i64,
    /// The forecast horizon values are counted over, ms.
    horizon_ms: i64,
}

/// What a policy reads while it acts: the shared settings and the objects.
#[derive(Clone, Copy)]
struct Env<'e, 'a> {
    context: &'e Context<'a>,
    objects: &'e Objects,
}

impl Context<'_> {
    fn rank(&self, tier: &str) -> Option<u8> {
        self.policy.rank(tier).and_then(|r| u8::try_from(r).ok())
    }
}

/// The trace's objects and what the catalogue would count of them.
pub(super) struct Objects {
    index: HashMap<Box<str>, u32>,
    ids: Vec<Box<str>>,
    /// Bytes, from the object's first line.
    pub(super) size: Vec<u64>,
    /// Time of the object's first line, epoch ms.
    created_ms: Vec<i64>,
    /// Clock hour of `hits`.
    hour: Vec<i64>,
    /// Accesses in `hour` so far.
    hits: Vec<u32>,
    /// Counted since the last forecaster run.
    touched: Vec<bool>,
    touched_list: Vec<u32>,
    /// Final counts of hours that ended after the last forecaster run saw them.
    finished: Vec<(u32, i64, u32)>,
    /// The last clock hour whose accesses passed the hot level.
    hot_hour: Vec<i64>,
    /// Accesses in the scored part.
    pub(super) scored_hits: Vec<u64>,
    /// Accesses read ahead and not replayed yet: those of the coming horizon.
    future: Vec<u32>,
    /// Accesses above which an hour makes an object hot: the hottest tier's
    /// `PREDICT_ABOVE`; `None` when it has none.
    hot_level: Option<u32>,
}

impl Objects {
    fn new(hot_level: Option<u32>) -> Objects {
        Objects {
            index: HashMap::default(),
            ids: Vec::new(),
            size: Vec::new(),
            created_ms: Vec::new(),
            hour: Vec::new(),
            hits: Vec::new(),
            touched: Vec::new(),
            touched_list: Vec::new(),
            finished: Vec::new(),
            hot_hour: Vec::new(),
            scored_hits: Vec::new(),
            future: Vec::new(),
            hot_level,
        }
    }

    fn len(&self) -> usize {
        self.ids.len()
    }

    /// The object's index, and whether this access, at `ts`, created it.
    fn intern(&mut self, id: &str, size: u64, ts: i64) -> (u32, bool) {
        if let Some(&o) = self.index.get(id) {
            return (o, false);
        }
        let o = u32::try_from(self.ids.len()).unwrap_or(u32::MAX);
        self.index.insert(id.into(), o);
        self.ids.push(id.into());
        self.size.push(size);
        self.created_ms.push(ts);
        self.hour.push(i64::MIN);
        self.hits.push(0);
        self.touched.push(false);
        self.hot_hour.push(i64::MIN);
        self.scored_hits.push(0);
        self.future.push(0);
        (o, true)
    }

    /// Counts an access of `o` at `ts`; true when it starts a hot episode: its hour
    /// passes the hot level, and the hour before did not.
    fn count(&mut self, o: u32, ts: i64, scored: bool) -> bool {
        let i = o as usize;
        let hour = ts.div_euclid(HOUR_MS);
        if self.hour[i] != hour {
            if self.touched[i] {
                self.finished.push((o, self.hour[i], self.hits[i]));
            }
            self.hour[i] = hour;
            self.hits[i] = 0;
        }
        self.hits[i] = self.hits[i].saturating_add(1);
        if !self.touched[i] {
            self.touched[i] = true;
            self.touched_list.push(o);
        }
        if scored {
            self.scored_hits[i] += 1;
        }
        let Some(level) = self.hot_level else {
            return false;
        };
        if self.hits[i] != level.saturating_add(1) {
            return false;
        }
        let new_episode = self.hot_hour[i] < hour - 1;
        self.hot_hour[i] = hour;
        new_episode
    }

    /// The hour counts the forecaster has not seen yet: the catalogue's buckets it
    /// would read at its next run.
    fn take_updates(&mut self) -> Vec<(u32, i64, u32)> {
        let mut updates = std::mem::take(&mut self.finished);
        for o in self.touched_list.drain(..) {
            let i = o as usize;
            self.touched[i] = false;
            updates.push((o, self.hour[i], self.hits[i]));
        }
        updates
    }

    /// Whether `o` is still in the hot episode that made it wait, at `now`.
    fn still_hot(&self, o: u32, now: i64) -> bool {
        self.hot_hour[o as usize] >= now.div_euclid(HOUR_MS) - 1
    }
}

/// The replay of every selected policy and the references over one trace.
pub(super) struct Replay<'a> {
    context: Context<'a>,
    objects: Objects,
    sims: Vec<PolicySim>,
    lru: Lru,
    foresight: Foresight,
    interval_ms: i64,
    next_tick: i64,
    /// Clock hour of the last idle-object sweep of the detectors.
    swept_hour: i64,
    scored_accesses: u64,
    moves_out: Option<MovesOut>,
    lookahead: Option<LookAhead>,
    /// Objects the policies have seen appear; the look-ahead may know more.
    created: usize,
}

/// The trace read a horizon ahead of the replay.
struct LookAhead {
    trace: Trace,
    /// The first access not counted yet: time, object, size.
    next: Option<(i64, Box<str>, u64)>,
    horizon_ms: i64,
}

impl LookAhead {
    /// Counts into `objects.future` every access up to `until_ms`. A line it cannot
    /// read ends the look-ahead; the replay reports it when it gets there.
    fn read_until(&mut self, until_ms: i64, objects: &mut Objects) {
        loop {
            if self.next.is_none() {
                self.next = match self.trace.next_access() {
                    Ok(Some(a)) => Some((a.ts_ms, a.object_id.into(), a.size_bytes)),
                    _ => return,
                };
            }
            match &self.next {
                Some((ts, id, size)) if *ts <= until_ms => {
                    let (o, _) = objects.intern(id, *size, *ts);
                    objects.future[o as usize] += 1;
                    self.next = None;
                }
                _ => return,
            }
        }
    }
}

impl<'a> Replay<'a> {
    /// A replay with every object yet to appear.
    pub(super) fn new(setup: Setup<'a>) -> Replay<'a> {
        let config = setup.config;
        let policy = setup.policy;
        let tier_names: Vec<String> = policy.tier_names().iter().map(|s| s.to_string()).collect();
        let default_rank = policy
            .rank(&config.default_tier)
            .and_then(|r| u8::try_from(r).ok())
            .unwrap_or(0);
        // A hottest tier filled by rank has no threshold of its own to say when an
        // hour is hot: the seed's is used.
        let hot_level = config.tiers[0]
            .predict_above
            .or(config.tiers[0]
                .capacity_bytes
                .map(|_| SEED_PREDICT_ABOVE[0]))
            .map(|t| t.floor().min(f64::from(u32::MAX)) as u32);
        let interval_ms = i64::try_from(config.forecast.interval.as_millis())
            .unwrap_or(i64::MAX)
            .max(1);
        let hot_capacity = config.tiers[0].capacity_bytes;
        let context = Context {
            policy,
            model: setup.model,
            capacity: config.tiers.iter().map(|t| t.capacity_bytes).collect(),
            costs: config.tiers.iter().map(|t| t.costs).collect(),
            tier_names,
            default_rank,
            bandwidth: setup.bandwidth,
            scored_from: setup.scored_from,
            horizon_ms: context_horizon_ms(setup.model),
        };
        let sims = setup
            .kinds
            .iter()
            .map(|&kind| PolicySim::new(kind, config, &context, setup.start_ms))
            .collect();
        Replay {
            context,
            objects: Objects::new(hot_level),
            sims,
            lru: Lru::new(hot_capacity),
            foresight: Foresight::new(hot_capacity),
            interval_ms,
            // Forecaster runs on a grid of whole intervals, as a service started on one.
            next_tick: (setup.start_ms.div_euclid(interval_ms) + 1) * interval_ms,
            swept_hour: setup.start_ms.div_euclid(HOUR_MS),
            scored_accesses: 0,
            moves_out: setup.moves_out,
            lookahead: setup.lookahead.map(|trace| LookAhead {
                trace,
                next: None,
                horizon_ms: context_horizon_ms(setup.model),
            }),
            created: 0,
        }
    }

    /// Replays one access.
    pub(super) fn access(&mut self, access: &Access<'_>) {
        let ts = access.ts_ms;
        while self.next_tick <= ts {
            let tick = self.next_tick;
            self.tick(tick);
            self.next_tick = tick.saturating_add(self.interval_ms);
        }
        let env = Env {
            context: &self.context,
            objects: &self.objects,
        };
        for sim in &mut self.sims {
            sim.advance(ts, env, &mut self.moves_out);
        }
        if let Some(lookahead) = self.lookahead.as_mut() {
            lookahead.read_until(ts.saturating_add(lookahead.horizon_ms), &mut self.objects);
        }
        let (o, _) = self
            .objects
            .intern(access.object_id, access.size_bytes, access.ts_ms);
        // The look-ahead interns objects first, in the same order the replay meets them.
        let created = o as usize == self.created;
        if created {
            self.created += 1;
        }
        let future = &mut self.objects.future[o as usize];
        *future = future.saturating_sub(1);
        let scored = ts >= self.context.scored_from;
        let turned_hot = self.objects.count(o, ts, scored);
        if scored {
            self.scored_accesses += 1;
        }
        let size = self.objects.size[o as usize];
        let env = Env {
            context: &self.context,
            objects: &self.objects,
        };
        for sim in &mut self.sims {
            if created {
                sim.create(o, size, ts, env);
            }
            sim.access(o, ts, turned_hot && scored, env, &mut self.moves_out);
        }
        self.lru.access(o, size, scored);
        self.foresight.access(o, scored);
    }

    /// A forecaster interval ends at `now`.
    fn tick(&mut self, now: i64) {
        let env = Env {
            context: &self.context,
            objects: &self.objects,
        };
        for sim in &mut self.sims {
            sim.advance(now, env, &mut self.moves_out);
        }
        let updates = self.objects.take_updates();
        let env = Env {
            context: &self.context,
            objects: &self.objects,
        };
        for sim in &mut self.sims {
            sim.forecast(now, &updates, env, &mut self.moves_out);
        }
        self.foresight.close(&self.objects.size);
        // The service sweeps idle objects from the detector every minute of wall time;
        // once an hour of virtual time keeps the memory bounded as well, at a sliver of
        // the cost (a swept object has had no access for about a day).
        let hour = now.div_euclid(HOUR_MS);
        if hour > self.swept_hour {
            self.swept_hour = hour;
            for sim in &mut self.sims {
                if let Some(detector) = sim.detector.as_mut() {
                    detector.forget_idle(now);
                }
            }
        }
    }

    /// Lets everything due by `end_ms` happen and reports.
    pub(super) fn finish(mut self, end_ms: i64) -> Outcome {
        let env = Env {
            context: &self.context,
            objects: &self.objects,
        };
        for sim in &mut self.sims {
            sim.advance(end_ms, env, &mut self.moves_out);
        }
        self.foresight.close(&self.objects.size);
        let foresight = self.foresight.report();
        let perfect = foresight.hot_hit_ratio;
        let policies = self
            .sims
            .iter_mut()
            .map(|sim| sim.report(end_ms, &self.context, perfect))
            .collect();
        let capacity = self.context.capacity[0];
        let references = vec![
            best_static(&self.objects.scored_hits, &self.objects.size, capacity),
            self.lru.report(),
            foresight,
        ];
        Outcome {
            objects: self.objects.len(),
            scored_accesses: self.scored_accesses,
            policies,
            references,
            moves_written: self.moves_out.map(MovesOut::finish),
        }
    }
}

/// The horizon a model predicts, ms; an hour without one.
fn context_horizon_ms(model: Option<&Model>) -> i64 {
    model.map_or(HOUR_MS, Model::horizon_ms)
}

/// Bytes on one tier over time.
#[derive(Debug, Clone, Copy, Default)]
struct TierUse {
    bytes: u64,
    /// Bytes of moves under way into the tier.
    reserved: u64,
    /// Bytes times milliseconds resident in the scored part.
    byte_ms: f64,
    since: i64,
}

impl TierUse {
    /// Accounts for the bytes resident from the last change until `now`.
    fn settle(&mut self, now: i64, scored_from: i64) {
        let from = self.since.max(scored_from);
        if now > from {
            self.byte_ms += self.bytes as f64 * (now - from) as f64;
        }
        self.since = self.since.max(now);
    }
}

/// A move waiting for the mover.
#[derive(Debug, Clone, Copy)]
struct Queued {
    object: u32,
    to: u8,
    reason: usize,
}

/// The move the mover is running.
#[derive(Debug, Clone, Copy)]
struct Running {
    object: u32,
    from: u8,
    to: u8,
    reason: usize,
    done_at: i64,
}

/// What one policy did, summed over the scored part.
#[derive(Debug, Clone, Default)]
struct Stats {
    served: Vec<u64>,
    read_bytes: Vec<u64>,
    moved_out_bytes: Vec<u64>,
    moves: [(u64, u64); REASONS.len()],
    refused: u64,
    episodes: u64,
    reached: u64,
    wait_ms: i64,
}

/// One policy's copy of the world: where each object is, its detector, forecaster and
/// mover.
struct PolicySim {
    kind: PolicyKind,
    detector: Option<Detector>,
    /// When the detector's earliest settling burst is due.
    next_due: Option<i64>,
    tracker: Option<Tracker>,
    /// Each object's id in the tracker, when there is one.
    tracked: Vec<TrackedId>,
    tier: Vec<u8>,
    moving: Vec<bool>,
    /// Where the object's move under way takes it, while `moving`.
    moving_to: Vec<u8>,
    /// When the object's current hot episode started, while it is not hot-tier resident.
    waiting_hot: Vec<i64>,
    tiers: Vec<TierUse>,
    queue: [VecDeque<Queued>; REASONS.len()],
    running: Option<Running>,
    /// The last forecaster run's placement, when tiers are filled by rank.
    standing: Option<Standing<u32>>,
    stats: Stats,
}

impl PolicySim {
    fn new(kind: PolicyKind, config: &Config, context: &Context<'_>, start_ms: i64) -> PolicySim {
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
            stats: Stats {
                served: vec![0; tiers],
                read_bytes: vec![0; tiers],
                moved_out_bytes: vec![0; tiers],
                ..Stats::default()
            },
        }
    }

    /// An object appears on the default tier, as an ingest puts it there.
    fn create(&mut self, o: u32, size: u64, now: i64, env: Env<'_, '_>) {
        let Env { context, objects } = env;
        let rank = context.default_rank;
        self.tier.push(rank);
        self.moving.push(false);
        self.moving_to.push(rank);
        self.waiting_hot.push(NEVER);
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
    fn access(
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

    /// Lets the moves and settled bursts due by `now` happen, in time order.
    fn advance(&mut self, now: i64, env: Env<'_, '_>, out: &mut Option<MovesOut>) {
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
    fn on_spike(&mut self, spike: &Spike, now: i64, env: Env<'_, '_>, out: &mut Option<MovesOut>) {
        let Env { context, objects } = env;
        let Some(&o) = objects.index.get(spike.object_id.as_str()) else {
            return;
        };
        if self.moving[o as usize] {
            return;
        }
        let moves = context.policy.admit_burst(
            self.standing.as_mut(),
            &o,
            usize::from(self.tier[o as usize]),
            objects.size[o as usize],
            spike.recent,
        );
        self.enqueue_placed(&moves, now, env, out);
    }

    /// Queues `moves` in order, each if its object is still where it was seen.
    fn enqueue_placed(
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
                self.enqueue(placed.key, to, reason_index(placed.reason), now, env, out);
            }
        }
    }

    /// Ranked placement at `now`, as the service's forecaster run does it: every object
    /// on a tier with a capacity, and every other one whose value could pay for a move,
    /// ranked by its value (0 without a forecaster: a reactive-only policy admits bursts
    /// against the tiers as they are).
    fn place(&mut self, now: i64, env: Env<'_, '_>, out: &mut Option<MovesOut>) {
        let Env { context, objects } = env;
        if !context.policy.is_ranked() {
            return;
        }
        let tracker = self.tracker.as_ref();
        let candidates: Vec<Candidate<u32>> = (0..self.tier.len())
            .filter_map(|i| {
                let tier = usize::from(self.tier[i]);
                let value = match (tracker, self.tracked.get(i)) {
                    _ if self.kind.knows_the_future() => f64::from(objects.future[i]),
                    (Some(tracker), Some(&id)) => tracker.value(id),
                    _ => 0.0,
                };
                let moving_to = self.moving[i].then(|| usize::from(self.moving_to[i]));
                context
                    .policy
                    .in_play(tier, moving_to, value)
                    .then(|| Candidate {
                        key: i as u32,
                        tier,
                        size: objects.size[i],
                        value,
                        moving_to,
                    })
            })
            .collect();
        let (moves, standing) =
            context
                .policy
                .place(&candidates, context.horizon_ms, now, self.standing.as_ref());
        self.standing = Some(standing);
        self.enqueue_placed(&moves, now, env, out);
    }

    /// A forecaster run at `now`, as `proactive_run` does it in the service: the
    /// tracker takes in the hour counts that changed, predicts, and the policy plans;
    /// each planned move is queued if the object is still where the plan saw it and
    /// has no move under way.
    fn forecast(
        &mut self,
        now: i64,
        updates: &[(u32, i64, u32)],
        env: Env<'_, '_>,
        out: &mut Option<MovesOut>,
    ) {
        let Env { context, objects } = env;
        let (Some(tracker), Some(model)) = (self.tracker.as_mut(), context.model) else {
            if self.kind.reacts() || self.kind.knows_the_future() {
                self.place(now, env, out);
            }
            return;
        };
        for &(o, hour, hits) in updates {
            tracker.observe_hits(self.tracked[o as usize], hour, hits);
        }
        let planned = context
            .policy
            .plan_proactive(&tracker.forecast(model, now), now);
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
            if self.tier[o as usize] == from {
                self.enqueue(
                    o,
                    to,
                    reason_index(MigrationReason::ProactivePrediction),
                    now,
                    env,
                    out,
                );
            }
        }
    }

    /// Queues a move of `o` to tier `to` for `REASONS[reason]`, unless one is under way.
    fn enqueue(
        &mut self,
        o: u32,
        to: u8,
        reason: usize,
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
        if let Some(out) = out.as_mut() {
            out.row(format_args!(
                "{},{now},{},{},{},{},{}\n",
                self.kind.name(),
                objects.ids[i],
                context.tier_names[usize::from(self.tier[i])],
                context.tier_names[usize::from(to)],
                REASONS[reason],
                objects.size[i]
            ));
        }
        self.queue[reason].push_back(Queued {
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
    fn start_next(&mut self, now: i64, env: Env<'_, '_>) {
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
            self.queue[queued.reason].push_front(queued);
        }
    }

    /// A queued move that cannot start for lack of room is dropped.
    fn refuse(&mut self, queued: Queued, now: i64, context: &Context<'_>) {
        self.moving[queued.object as usize] = false;
        if now >= context.scored_from {
            self.stats.refused += 1;
        }
    }

    /// The running move ends at `now`: the object switches tier.
    fn complete(&mut self, now: i64, env: Env<'_, '_>) {
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
        if now >= context.scored_from {
            let (count, bytes) = &mut self.stats.moves[done.reason];
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

    fn report(&mut self, end_ms: i64, context: &Context<'_>, perfect: f64) -> PolicyReport {
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
            policy: self.kind.name().to_string(),
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
const HOURS_PER_MONTH: f64 = 730.0;

/// `part / whole`, 0 for nothing.
pub(super) fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_795_255_200_000;
    const GB_BYTES: u64 = 1_000_000_000;

    fn config(vars: &[(&str, &str)]) -> Config {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| vars.get(k).cloned()).unwrap()
    }

    /// Replays `accesses` (time, object, size) with the reactive policy at 100 MB/s.
    fn replay(config: &Config, accesses: &[(i64, &str, u64)]) -> Outcome {
        let policy = Policy::new(config);
        let mut replay = Replay::new(Setup {
            config,
            policy: &policy,
            kinds: &[PolicyKind::Reactive],
            model: None,
            bandwidth: 100_000_000,
            scored_from: T0,
            start_ms: T0,
            moves_out: None,
            lookahead: None,
        });
        for &(ts_ms, object_id, size_bytes) in accesses {
            replay.access(&Access {
                ts_ms,
                object_id,
                size_bytes,
                write: false,
            });
        }
        replay.finish(accesses.last().map_or(T0, |a| a.0))
    }

    /// 150 accesses of a 1 GB object in 0.6 s, then one a minute for ten minutes.
    fn burst() -> Vec<(i64, &'static str, u64)> {
        let mut accesses: Vec<_> = (0..150).map(|i| (T0 + i * 4, "a", GB_BYTES)).collect();
        accesses.extend((1..=10).map(|m| (T0 + m * 60_000, "a", GB_BYTES)));
        accesses
    }

    #[test]
    fn a_burst_is_promoted_once_the_modelled_copy_is_done() {
        let outcome = replay(&config(&[]), &burst());
        let report = &outcome.policies[0];
        assert_eq!(report.accesses, 160);
        let moves = &report.moves[reason_index(MigrationReason::ReactiveAccessSpike)];
        assert_eq!(
            (moves.reason.as_str(), moves.moves, moves.bytes),
            ("reactive_access_spike", 1, GB_BYTES)
        );
        // The spike is the 101st access (0.4 s, before the burst settled at a lower
        // level); the copy takes 10 s more, so the whole burst is served where the
        // object was.
        assert_eq!(report.tiers[2].accesses, 150);
        assert_eq!(report.tiers[0].accesses, 10);
        assert_eq!(report.hot_hit_ratio, 10.0 / 160.0);
        // It turned hot at its 51st access of the hour (0.2 s) and was on the hot
        // tier at 10.4 s.
        let hot = report.time_to_hot;
        assert_eq!((hot.episodes, hot.reached), (1, 1));
        assert!((hot.mean_secs.unwrap() - 10.2).abs() < 1e-9, "{hot:?}");
        // It left the public tier once, 1 GB, and was read there 150 times.
        assert!((report.tiers[2].transfer_gb - 151.0).abs() < 1e-9);
    }

    #[test]
    fn a_burst_too_big_for_the_hot_tier_goes_to_the_next_one_down() {
        // The tiers' capacities are known from the start (as the service's first run
        // places an empty catalogue): a 1 GB object never goes to a 0.5 GB hot tier, and
        // its burst takes it to `private` by that tier's threshold instead.
        let config = config(&[("TIER_ONPREM_CAPACITY_BYTES", "500000000")]);
        let outcome = replay(&config, &burst());
        let report = &outcome.policies[0];
        assert_eq!(report.refused_moves, 0);
        assert_eq!(
            report.moves[reason_index(MigrationReason::ReactiveAccessSpike)].moves,
            1
        );
        assert_eq!(report.tiers[0].accesses, 0);
        assert_eq!(report.tiers[1].accesses, 10);
        assert_eq!(report.time_to_hot.reached, 0);
    }

    #[test]
    fn storage_is_counted_per_tier_over_time_and_priced() {
        let config = config(&[("TIER_PUBLIC_COST_GB_MONTH", "0.02")]);
        // One 1 GB object, accessed at the start and ten hours later.
        let outcome = replay(
            &config,
            &[(T0, "a", GB_BYTES), (T0 + 10 * HOUR_MS, "a", GB_BYTES)],
        );
        let public = &outcome.policies[0].tiers[2];
        assert!((public.storage_gb_hours - 10.0).abs() < 1e-9);
        assert!((public.storage_cost - 10.0 / 730.0 * 0.02).abs() < 1e-12);
        assert_eq!(outcome.policies[0].cost.storage, public.storage_cost);
        assert_eq!(outcome.objects, 1);
    }
}
