//! Writing a batch: the counts and offsets of each partition in one transaction, the
//! dead letters to their topic first, and accesses the catalogue resolved shown to the
//! detector.

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use rdkafka::error::KafkaResult;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::FutureRecord;

use super::{DeadMessage, LoopState, PipelineContext, Rewind, Shared};
use crate::db::{AccessCount, PartitionAccesses};
use crate::detector::Spike;
use crate::timestamp::now_ms;

impl PipelineContext {
    /// Waits for the flush in flight, if any, and records what must be read again.
    pub(super) fn finish_flushing(&self, state: &mut LoopState) {
        if let Some((task, started)) = state.flushing.take() {
            match self.shared.handle.block_on(task) {
                Ok(rewinds) => state.rewinds.extend(rewinds),
                Err(e) => tracing::error!(error = %e, "flush task failed"),
            }
            state.last_flush = Some((Instant::now(), started.elapsed()));
        }
    }

    /// Writes everything read so far and waits until it is written (before partitions
    /// go, and at shutdown).
    pub(super) fn flush_everything(&self, state: &mut LoopState) {
        self.finish_flushing(state);
        self.start_flush(state);
        self.finish_flushing(state);
    }

    /// Hands the current batch to a flush task.
    pub(super) fn start_flush(&self, state: &mut LoopState) {
        let mut batch = Vec::new();
        let mut dead = Vec::new();
        let mut unknown = 0;
        for (&partition, part) in state.partitions.iter_mut() {
            if !part.is_dirty() {
                continue;
            }
            let counts = part
                .counts
                .drain()
                .map(|((object_id, _), (hits, at_ms))| AccessCount {
                    object_id,
                    at_ms,
                    hits,
                })
                .collect();
            batch.push(PartitionAccesses {
                partition,
                from_offset: part.stored,
                to_offset: part.next,
                counts,
                located: std::mem::take(&mut part.located),
            });
            dead.append(&mut part.dead);
            unknown += std::mem::take(&mut part.unknown);
            part.stored = Some(part.next);
        }
        state.events_in_batch = 0;
        state.batch_started = None;
        if batch.is_empty() {
            return;
        }
        let shared = self.shared.clone();
        state.flushing = Some((
            self.shared
                .handle
                .spawn(async move { shared.flush(batch, dead, unknown).await }),
            Instant::now(),
        ));
    }
}

impl Shared {
    /// Writes one batch; returns the partitions to read again because it was not stored.
    ///
    /// Each partition is written in its own transaction, all of them at once: a
    /// partition's counts and its offset still commit together, which is all that
    /// exactly-once needs, and the database works on them with several connections (a
    /// batch touching every active object took the longest, and on one connection it
    /// used one core).
    async fn flush(
        &self,
        batch: Vec<PartitionAccesses>,
        dead: Vec<DeadMessage>,
        unknown: u64,
    ) -> Vec<Rewind> {
        let started = Instant::now();
        if let Err(e) = self.send_dead_letters(&dead).await {
            tracing::error!(error = %e, "cannot write to the dead-letter topic; the batch will be read again");
            return batch.iter().map(|p| (p.partition, p.from_offset)).collect();
        }
        let writes = batch.iter().map(|part| {
            self.catalogue.record_access(
                &self.settings.group_id,
                &self.settings.topic,
                std::slice::from_ref(part),
            )
        });
        let mut rewinds = Vec::new();
        let mut counted = 0;
        let mut unknown = unknown;
        let mut resolved = Vec::new();
        for (part, written) in batch.iter().zip(join_all(writes).await) {
            match written {
                Ok(recorded) => {
                    counted += recorded.counted_hits;
                    unknown += recorded.unknown;
                    resolved.extend(recorded.resolved);
                    if !recorded.fenced.is_empty() {
                        tracing::warn!(fenced = ?recorded.fenced, "another consumer moved this partition on; its batch was dropped");
                    }
                    rewinds.extend(recorded.fenced);
                }
                Err(e) => {
                    tracing::error!(partition = part.partition, error = %e, "cannot write access counts; the partition's batch will be read again");
                    rewinds.push((part.partition, part.from_offset));
                }
            }
        }
        // Dead letters of a partition read again are sent again and counted then.
        for dead in dead
            .iter()
            .filter(|d| rewinds.iter().all(|r| r.0 != d.partition))
        {
            self.metrics.record_dead_letter(dead.reason.code());
        }
        tracing::debug!(
            partitions = ?batch.iter().map(|p| (p.partition, p.from_offset, p.to_offset)).collect::<Vec<_>>(),
            counted,
            unknown,
            dead_letters = dead.len(),
            rewinds = rewinds.len(),
            took_ms = started.elapsed().as_millis() as u64,
            "batch written"
        );
        self.metrics
            .record_flush(counted, unknown, started.elapsed());
        self.feed_detector(&resolved).await;
        rewinds
    }

    async fn send_dead_letters(&self, dead: &[DeadMessage]) -> KafkaResult<()> {
        if dead.is_empty() {
            return Ok(());
        }
        let producer = self.dead_letters()?;
        let mut deliveries = Vec::with_capacity(dead.len());
        for d in dead {
            let reason = d.reason.to_string();
            let headers = OwnedHeaders::new()
                .insert(Header {
                    key: "strata-dlq-reason",
                    value: Some(reason.as_str()),
                })
                .insert(Header {
                    key: "strata-dlq-code",
                    value: Some(d.reason.code()),
                })
                .insert(Header {
                    key: "strata-source",
                    value: Some(&format!(
                        "{}/{}/{}",
                        self.settings.topic, d.partition, d.offset
                    )),
                });
            let mut record = FutureRecord::to(&self.settings.dlq_topic)
                .payload(&d.value)
                .headers(headers);
            if let Some(key) = &d.key {
                record = record.key(key);
            }
            deliveries.push(producer.send(record, Duration::from_secs(10)));
        }
        for delivery in deliveries {
            delivery.await.map_err(|(e, _)| e)?;
        }
        Ok(())
    }

    /// Counts accesses that named the object by bucket and key in the detector, now
    /// that the catalogue resolved them.
    async fn feed_detector(&self, resolved: &[AccessCount]) {
        let now = now_ms();
        let spikes: Vec<Spike> = {
            let mut detector = self.detector.lock().expect("detector lock");
            resolved
                .iter()
                .filter_map(|c| detector.observe(&c.object_id, c.at_ms, c.hits as u64, now))
                .collect()
        };
        for spike in spikes {
            if self.spikes.send(spike).await.is_err() {
                break;
            }
        }
    }
}
