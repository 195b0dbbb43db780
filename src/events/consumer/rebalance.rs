//! The consumer's side of group rebalances: partitions taken over start at the offsets
//! stored with the counts, partitions given up are written first; and librdkafka's
//! log, errors and statistics, which report the broker and the partitions' ends.

use std::collections::{BTreeMap, HashMap};

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::statistics::Statistics;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaRespErr;

use super::{ASSIGN_RETRY, PartitionBatch, PipelineContext, Shared};
use crate::db::MINUTE_MS;
use crate::health::BrokerLink;
use crate::timestamp::now_ms;

/// How far before a partition's stored offset reading starts; the messages in between
/// were counted already and are skipped. Some brokers (tansu) answer a
/// fetch from inside a record batch with the *next* batch, silently skipping the rest of
/// the batch the offset is in; starting a batch's length early gets that batch whole.
/// 10,000 is librdkafka's largest batch by default; other producers batch less.
const REFETCH_MARGIN: i64 = 10_000;

impl ClientContext for PipelineContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        self.watch.log(level, fac, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.watch.error(error, reason);
    }

    fn stats(&self, statistics: Statistics) {
        self.watch.observe(&statistics);
        let Some(topic) = statistics.topics.get(&self.shared.settings.topic) else {
            return;
        };
        let mut state = self.state.lock().expect("consumer state lock");
        for (partition, stats) in &topic.partitions {
            if let Some(batch) = state.partitions.get_mut(partition) {
                batch.high_watermark = (stats.hi_offset >= 0).then_some(stats.hi_offset);
            }
        }
    }
}

impl ConsumerContext for PipelineContext {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => self.assign(consumer, tpl),
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                let revoked: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
                tracing::info!(?revoked, "partitions revoked; writing their counts first");
                let mut state = self.state.lock().expect("consumer state lock");
                self.flush_everything(&mut state);
                state.partitions.clear();
                state.rewinds.clear();
                self.shared.health.set_partitions(0);
                if let Err(e) = consumer.unassign() {
                    tracing::warn!(error = %e, "unassigning partitions failed");
                }
            }
            other => {
                tracing::warn!(error = ?other, "rebalance error; partitions stay unassigned until the next one");
                let mut state = self.state.lock().expect("consumer state lock");
                state.partitions.clear();
                self.shared.health.set_partitions(0);
                let _ = consumer.unassign();
            }
        }
        self.shared.metrics.set_lag(BTreeMap::new());
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, _rebalance: &Rebalance<'_>) {}
}

impl PipelineContext {
    /// Starts every assigned partition at the offset stored in the database.
    fn assign(&self, consumer: &BaseConsumer<Self>, tpl: &mut TopicPartitionList) {
        let shared = &self.shared;
        let stored = loop {
            match shared.handle.block_on(
                shared
                    .catalogue
                    .consumer_offsets(&shared.settings.group_id, &shared.settings.topic),
            ) {
                Ok(offsets) => break offsets,
                Err(e) if !shared.stop.is_cancelled() => {
                    tracing::error!(error = %e, "cannot read stored offsets; retrying before taking the partitions");
                    std::thread::sleep(ASSIGN_RETRY);
                }
                Err(_) => return,
            }
        };
        let stored: HashMap<i32, i64> = stored
            .into_iter()
            .map(|o| (o.partition, o.next_offset))
            .collect();
        let mut state = self.state.lock().expect("consumer state lock");
        let mut starts = Vec::new();
        for element in tpl.elements() {
            starts.push((
                element.topic().to_string(),
                element.partition(),
                stored.get(&element.partition()).copied(),
            ));
        }
        for (topic, partition, offset) in &starts {
            let start = fetch_start(*offset);
            if let Err(e) = tpl.set_partition_offset(topic, *partition, start) {
                tracing::error!(partition, error = %e, "cannot set the start offset");
            }
            state
                .partitions
                .insert(*partition, PartitionBatch::starting_at(*offset));
        }
        tracing::info!(
            assigned = ?starts.iter().map(|(_, p, o)| (*p, *o)).collect::<Vec<_>>(),
            "partitions assigned; reading from the offsets stored with the counts"
        );
        match consumer.assign(tpl) {
            Ok(()) => {
                self.watch.report(BrokerLink::Up);
                self.shared.health.set_partitions(starts.len());
            }
            Err(e) => tracing::error!(error = %e, "assigning partitions failed"),
        }
        let shared = self.shared.clone();
        self.shared
            .handle
            .spawn(async move { shared.warm_detector().await });
    }
}

impl Shared {
    /// Gives the detector the last hour of every recently accessed object as its
    /// baseline, so that a consumer taking partitions over does not mistake a busy
    /// object's usual traffic for a spike. Objects it already tracks keep their state.
    async fn warm_detector(&self) {
        let now = now_ms();
        match self.catalogue.recent_hits(now - 60 * MINUTE_MS).await {
            Ok(history) => {
                let mut detector = self.detector.lock().expect("detector lock");
                let windows_per_hour = 3_600_000.0 / detector.window_ms() as f64;
                for (object_id, hits) in &history {
                    detector.warm(object_id, *hits as f64 / windows_per_hour);
                }
                self.metrics.set_detector_tracked(detector.tracked());
                tracing::info!(
                    objects = history.len(),
                    "spike detector warmed up from the last hour of access history"
                );
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read access history to warm the spike detector; it starts cold")
            }
        }
    }
}

/// Where to fetch from to read a partition from its stored offset (see
/// [`REFETCH_MARGIN`]).
pub(super) fn fetch_start(stored: Option<i64>) -> Offset {
    match stored {
        Some(offset) if offset > REFETCH_MARGIN => Offset::Offset(offset - REFETCH_MARGIN),
        _ => Offset::Beginning,
    }
}
