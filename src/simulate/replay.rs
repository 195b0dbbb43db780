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

use crate::config::{Config, SEED_PREDICT_ABOVE};
use crate::db::{DAY_MS, HOUR_MS};
use crate::forecast::Model;
use crate::forecast::trace::Access;
use crate::policy::Policy;

use super::objects::{Context, Env, Objects};
use super::policy_sim::PolicySim;
use super::reference::{Foresight, Lru, best_static};
use super::report::{PolicyReport, ReferenceReport};
use super::{MovesOut, PolicyKind, Trace};
use crate::policy::rules::RuleSet;

/// Everything a replay is set up from.
pub(super) struct Setup<'a> {
    /// Tiers, capacities and costs, detector and forecaster settings.
    pub config: &'a Config,
    /// The policy `serve` would run with `config`.
    pub policy: &'a Policy,
    /// The policies to replay.
    pub kinds: &'a [PolicyKind],
    /// Operator rules: each policy is replayed again keeping to them.
    pub rules: Option<&'a RuleSet>,
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
    /// The trace twice again, read a horizon and a day ahead for the policies that know
    /// the future.
    pub lookahead: Option<[Trace; 2]>,
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
    /// A horizon ahead and a day ahead, when a policy knows the future.
    lookahead: Vec<LookAhead>,
    /// Objects the policies have seen appear; the look-ahead may know more.
    created: usize,
}

/// The trace read ahead of the replay.
struct LookAhead {
    trace: Trace,
    /// The first access not counted yet: time, object, size.
    next: Option<(i64, Box<str>, u64)>,
    /// How far ahead: the horizon (counts into `objects.future`) or a day (into
    /// `objects.future_day`).
    ahead_ms: i64,
    day: bool,
}

impl LookAhead {
    /// Counts every access up to `until_ms`. A line it cannot read ends the look-ahead;
    /// the replay reports it when it gets there.
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
                    let counts = if self.day {
                        &mut objects.future_day
                    } else {
                        &mut objects.future
                    };
                    counts[o as usize] += 1;
                    objects.foreseen.push(o);
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
            rules: setup.rules,
            model: setup.model,
            capacity: config.tiers.iter().map(|t| t.capacity_bytes).collect(),
            costs: config.tiers.iter().map(|t| t.costs).collect(),
            tier_names,
            default_rank,
            bandwidth: setup.bandwidth,
            scored_from: setup.scored_from,
            horizon_ms: context_horizon_ms(setup.model),
        };
        let with_rules: &[bool] = if setup.rules.is_some() {
            &[false, true]
        } else {
            &[false]
        };
        let sims = setup
            .kinds
            .iter()
            .flat_map(|&kind| with_rules.iter().map(move |&rules| (kind, rules)))
            .map(|(kind, rules)| PolicySim::new(kind, rules, config, &context, setup.start_ms))
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
            lookahead: setup
                .lookahead
                .into_iter()
                .flat_map(|[horizon, day]| {
                    [
                        (horizon, context_horizon_ms(setup.model), false),
                        (day, DAY_MS, true),
                    ]
                })
                .map(|(trace, ahead_ms, day)| LookAhead {
                    trace,
                    next: None,
                    ahead_ms,
                    day,
                })
                .collect(),
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
        for lookahead in &mut self.lookahead {
            lookahead.read_until(ts.saturating_add(lookahead.ahead_ms), &mut self.objects);
        }
        let (o, _) = self
            .objects
            .intern(access.object_id, access.size_bytes, access.ts_ms);
        // The look-ahead interns objects first, in the same order the replay meets them.
        let created = o as usize == self.created;
        if created {
            self.created += 1;
        }
        for future in [
            &mut self.objects.future[o as usize],
            &mut self.objects.future_day[o as usize],
        ] {
            *future = future.saturating_sub(1);
        }
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
        let foreseen = std::mem::take(&mut self.objects.foreseen);
        let env = Env {
            context: &self.context,
            objects: &self.objects,
        };
        for sim in &mut self.sims {
            sim.foresee(&foreseen);
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

#[cfg(test)]
mod tests {
    use foldhash::HashMap;

    use std::io::Write;

    use super::*;
    use crate::db::MoveReason;
    use crate::simulate::objects::reason_index;
    use crate::simulate::open_trace;

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
        replay_kinds(config, &[PolicyKind::Reactive], accesses)
    }

    /// Replays `accesses` with the policies `kinds` at 100 MB/s; the look-ahead reads
    /// them from a file, as `simulate` reads a trace.
    fn replay_kinds(
        config: &Config,
        kinds: &[PolicyKind],
        accesses: &[(i64, &str, u64)],
    ) -> Outcome {
        let policy = Policy::new(config);
        let mut file = tempfile::NamedTempFile::new().unwrap();
        writeln!(file, "ts_ms,object_id,size_bytes").unwrap();
        for (ts_ms, object_id, size_bytes) in accesses {
            writeln!(file, "{ts_ms},{object_id},{size_bytes}").unwrap();
        }
        let lookahead = kinds
            .iter()
            .any(|k| k.knows_the_future())
            .then(|| [(); 2].map(|()| open_trace(file.path()).unwrap()));
        let mut replay = Replay::new(Setup {
            rules: None,
            config,
            policy: &policy,
            kinds,
            model: None,
            bandwidth: 100_000_000,
            scored_from: T0,
            start_ms: T0,
            moves_out: None,
            lookahead,
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
        let moves = &report.moves[reason_index(MoveReason::ReactiveAccessSpike)];
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
            report.moves[reason_index(MoveReason::ReactiveAccessSpike)].moves,
            1
        );
        assert_eq!(report.tiers[0].accesses, 0);
        assert_eq!(report.tiers[1].accesses, 10);
        assert_eq!(report.time_to_hot.reached, 0);
    }

    #[test]
    fn true_counts_places_an_object_ahead_of_accesses_it_did_not_foresee_at_first() {
        // A 1 GB object read once, then 100 times in the third hour: the policy that
        // knows the coming horizon sees the reads only an hour ahead, long after it
        // first looked at the object and left it out of play.
        let mut accesses = vec![(T0, "a", GB_BYTES)];
        accesses.extend((0..100).map(|i| (T0 + 2 * HOUR_MS + i * 30_000, "a", GB_BYTES)));
        let config = config(&[("TIER_ONPREM_CAPACITY_BYTES", "2000000000")]);
        let outcome = replay_kinds(&config, &[PolicyKind::TrueCounts], &accesses);
        let report = &outcome.policies[0];
        // A few of the first reads pass before enough of them are within the horizon.
        assert!(report.tiers[0].accesses >= 90, "{report:?}");
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
