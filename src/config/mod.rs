//! Service configuration, read from environment variables.
//!
//! Every setting has an embedded default, so `strata serve` runs with nothing set at all.
//! A `.env` file in the working directory is loaded into the environment first, once, by
//! the binary ([`load_dotenv`]); real environment variables win over it. `.env.example`
//! documents every variable read here.
//!
//! Parsing is a pure function of a variable lookup ([`Config::from_lookup`]) so that it can
//! be tested without touching the process environment.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

mod kafka;
mod s3_endpoint;
mod tiers;
mod vars;

pub use kafka::KafkaProperties;
use s3_endpoint::s3_endpoint_config;
pub use s3_endpoint::{DEFAULT_BUCKET, S3Credentials, S3EndpointConfig};
use tiers::tiers_config;
pub use tiers::{
    BackendConfig, S3Config, SEED_PREDICT_ABOVE, StaticCredentials, TierConfig, TierCosts,
    is_valid_tier_name,
};
pub use vars::redact_url;
use vars::{Vars, invalid};

/// Where the API listens unless `LISTEN_ADDR` says otherwise: loopback only, so that an
/// unconfigured start exposes nothing.
pub const DEFAULT_LISTEN_ADDR: &str = "127.0.0.1:8080";
/// Default tier order, hottest first.
pub const DEFAULT_TIERS: &str = "onprem,private,public";
/// Tier that new objects land in unless `DEFAULT_TIER` says otherwise.
pub const DEFAULT_LANDING_TIER: &str = "public";
/// Smallest part S3 accepts in a multipart upload (all parts but the last).
pub const MIN_S3_PART_SIZE: u64 = 5 * 1024 * 1024;
/// Largest part S3 accepts in a multipart upload.
pub const MAX_S3_PART_SIZE: u64 = 5 * 1024 * 1024 * 1024;

/// A setting that could not be used; start-up stops with this message.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// A variable is set to a value that does not parse or is out of range.
    #[error("invalid value {value:?} for {var}: expected {expected}")]
    Invalid {
        /// The environment variable.
        var: String,
        /// The value it holds.
        value: String,
        /// What would have been accepted.
        expected: String,
    },
    /// A variable that this configuration needs is not set.
    #[error("{var} must be set: {why}")]
    Missing {
        /// The environment variable.
        var: String,
        /// Why it is needed.
        why: String,
    },
    /// A secret is given both as a value and as a file.
    #[error("{var} and {other} are both set; give the secret one way")]
    Both {
        /// The variable.
        var: String,
        /// Its `_FILE` twin.
        other: String,
    },
    /// A `.env` file exists but cannot be read.
    #[error("cannot load {path}: {message}")]
    DotEnv {
        /// The file.
        path: String,
        /// What went wrong.
        message: String,
    },
}

/// The whole service configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Address the HTTP API listens on (`LISTEN_ADDR`).
    pub listen: SocketAddr,
    /// Catalogue database: `postgres://…` or `sqlite://…` (`DATABASE_URL`).
    pub database_url: String,
    /// Directory for embedded-mode state: SQLite file and `file://` tiers (`DATA_DIR`).
    pub data_dir: PathBuf,
    /// Tiers, hottest first (`TIERS`, `TIER_<NAME>_*`).
    pub tiers: Vec<TierConfig>,
    /// Tier new objects land in (`DEFAULT_TIER`).
    pub default_tier: String,
    /// How S3 transfers are cut into parts (`S3_PART_SIZE_BYTES`, `S3_PART_CONCURRENCY`).
    pub transfer: TransferConfig,
    /// How tier moves are run (`MOVER_*`).
    pub mover: MoverConfig,
    /// Where access events flow (`KAFKA_*`, `EVENTS_*`).
    pub events: EventsConfig,
    /// When a burst of accesses counts as a spike (`DETECTOR_*`).
    pub detector: DetectorConfig,
    /// The scheduled forecaster (`FORECAST_*`, `MODELS_DIR`).
    pub forecast: ForecastConfig,
    /// Who may call the HTTP API and how much it accepts (`API_*`, `MAX_OBJECT_BYTES`).
    pub api: ApiConfig,
    /// The S3 endpoint and its buckets (`S3_LISTEN_ADDR`, `S3_BUCKETS`, …).
    pub s3_endpoint: S3EndpointConfig,
    /// Operator rules (`RULES_*`).
    pub rules: RulesConfig,
    /// How long history is kept (`RETENTION_*`).
    pub retention: RetentionConfig,
}

/// How long the catalogue keeps access history and finished moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionConfig {
    /// Minute buckets, once rolled up into hours (`RETENTION_MINUTE_BUCKETS_SECS`; an
    /// hour at least: objects' last-minute and last-hour counts and the detector's
    /// warm-up read them).
    pub minute_buckets: Duration,
    /// Hour buckets (`RETENTION_HOUR_BUCKETS_SECS`; a day at least: last-day counts
    /// read them, and the forecaster's features and training want weeks).
    pub hour_buckets: Duration,
    /// Finished moves and expiration records (`RETENTION_MOVES_SECS`); `None`: kept.
    pub finished: Option<Duration>,
    /// Time between retention runs (`RETENTION_INTERVAL_SECS`).
    pub interval: Duration,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            minute_buckets: Duration::from_secs(2 * 86_400),
            hour_buckets: Duration::from_secs(35 * 86_400),
            finished: None,
            interval: Duration::from_secs(300),
        }
    }
}

/// How operator rules are seeded and applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RulesConfig {
    /// Rules stored at start, replacing those of the same ids (`RULES_FILE`, YAML or
    /// JSON: a list of rules with their ids).
    pub file: Option<PathBuf>,
    /// Time between passes that apply the rules (`RULES_INTERVAL_SECS`).
    pub interval: Duration,
    /// The length of a rule's day, for `after_days` (`RULES_DAY_SECS`; shorter only to
    /// try rules out).
    pub day: Duration,
}

impl Default for RulesConfig {
    fn default() -> Self {
        RulesConfig {
            file: None,
            interval: Duration::from_secs(60),
            day: Duration::from_secs(86_400),
        }
    }
}

/// Access control and limits of the HTTP API.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiConfig {
    /// Bearer token that mutating requests must carry; `None` leaves them open
    /// (`API_TOKEN`).
    pub token: Option<String>,
    /// Whether reads need the token too (`API_TOKEN_READS`).
    pub token_reads: bool,
    /// Largest object ingest accepts, bytes; larger uploads get 413 (`MAX_OBJECT_BYTES`).
    pub max_object_bytes: u64,
    /// Longest a request may take to produce its response head; the longest an upload
    /// may pause between two chunks (`API_REQUEST_TIMEOUT_SECS`).
    pub request_timeout: Duration,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            token: None,
            token_reads: false,
            max_object_bytes: 5 * 1024 * 1024 * 1024,
            request_timeout: Duration::from_secs(30),
        }
    }
}

// The token never reaches a log line through `{:?}`.
impl fmt::Debug for ApiConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiConfig")
            .field("token", &self.token.as_ref().map(|_| "***"))
            .field("token_reads", &self.token_reads)
            .field("max_object_bytes", &self.max_object_bytes)
            .field("request_timeout", &self.request_timeout)
            .finish()
    }
}

/// The access-event pipeline on Kafka.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventsConfig {
    /// Bootstrap servers, `host:port,…`; `None` runs the embedded in-process broker
    /// (`KAFKA_BROKERS`).
    pub brokers: Option<String>,
    /// Topic of access events (`KAFKA_ACCESS_TOPIC`).
    pub access_topic: String,
    /// Topic that malformed messages are moved to (`KAFKA_DLQ_TOPIC`).
    pub dlq_topic: String,
    /// Consumer group shared by every `strata serve` of one deployment (`KAFKA_GROUP_ID`).
    pub group_id: String,
    /// Longest time counted events wait in memory before they are written, while the
    /// consumer is caught up (`EVENTS_FLUSH_MS`); behind the log it waits as long as the
    /// last write took.
    pub flush_interval: Duration,
    /// Events after which a batch is written even before the interval; four times this
    /// is the most rows (distinct objects and minutes) a batch gathers while the previous
    /// one is still being written (`EVENTS_FLUSH_MAX`).
    pub flush_max_events: usize,
    /// Larger messages are dead letters (`EVENTS_MAX_BYTES`).
    pub max_event_bytes: usize,
    /// Access events the producer buffers while the broker is slow; beyond this, a
    /// request that publishes events is refused with 503 (`KAFKA_PRODUCER_QUEUE`).
    pub producer_queue: usize,
    /// How long the group waits for a consumer that stopped answering before its
    /// partitions go to the others (`KAFKA_SESSION_TIMEOUT_MS`).
    pub session_timeout: Duration,
    /// How long `serve` waits for a first broker before it exits with an error
    /// (`KAFKA_STARTUP_TIMEOUT_MS`); `None`, the default, waits on, not ready meanwhile.
    pub startup_timeout: Option<Duration>,
    /// librdkafka properties every client gets: TLS and SASL (`KAFKA_SECURITY_PROTOCOL`,
    /// `KAFKA_SASL_*`, `KAFKA_SSL_*`) and `KAFKA_PROPERTIES`.
    pub properties: KafkaProperties,
}

impl Default for EventsConfig {
    fn default() -> Self {
        EventsConfig {
            brokers: None,
            access_topic: "access-events".into(),
            dlq_topic: "access-events.dlq".into(),
            group_id: "strata".into(),
            flush_interval: Duration::from_millis(200),
            flush_max_events: 100_000,
            max_event_bytes: 64 * 1024,
            producer_queue: 1_000_000,
            session_timeout: Duration::from_secs(10),
            startup_timeout: None,
            properties: KafkaProperties::default(),
        }
    }
}

/// How the reactive spike detector judges a burst.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DetectorConfig {
    /// The sliding window that recent accesses are counted over (`DETECTOR_WINDOW_SECS`).
    pub window: Duration,
    /// How long the detector watches a burst that crossed the lowest promotion threshold
    /// before deciding, so that a burst still growing lands on the tier its full size
    /// calls for (`DETECTOR_SETTLE_MS`).
    pub settle: Duration,
    /// After a promotion, how long the object is only promoted further, never again to
    /// the same level (`DETECTOR_COOLDOWN_SECS`).
    pub cooldown: Duration,
    /// A window's count must also exceed this multiple of the object's usual count per
    /// window, so that steadily busy objects are left to the forecaster
    /// (`DETECTOR_SPIKE_RATIO`).
    pub spike_ratio: f64,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        DetectorConfig {
            window: Duration::from_secs(60),
            settle: Duration::from_millis(500),
            cooldown: Duration::from_secs(600),
            spike_ratio: 3.0,
        }
    }
}

/// How the scheduled forecaster runs and how far its decisions lean against churn.
#[derive(Debug, Clone, PartialEq)]
pub struct ForecastConfig {
    /// Time between runs (`FORECAST_INTERVAL_SECS`).
    pub interval: Duration,
    /// An object leaves a tier for a colder one only when its prediction falls below
    /// this share of the tier's threshold, so predictions wavering around a threshold do
    /// not move it back and forth (`FORECAST_HYSTERESIS`, 0 to 1).
    pub hysteresis: f64,
    /// No proactive demotion of an object whose tier or content changed this recently,
    /// so the forecaster does not undo a promotion the detector or a user just made
    /// (`FORECAST_MIN_RESIDENCE_SECS`).
    pub min_residence: Duration,
    /// Where model files are found; the newest valid one becomes active when the
    /// catalogue has none (`MODELS_DIR`).
    pub models_dir: PathBuf,
    /// Bytes an hour the forecaster's ranked placement may move
    /// (`MOVE_BUDGET_BYTES_PER_HOUR`); `None`: the capacities of the tiers that have one,
    /// added up (each bounded tier turned over at most once an hour).
    pub move_budget_bytes_per_hour: Option<u64>,
    /// Time between scheduled retrains from the catalogue, champion against challenger
    /// (`FORECAST_RETRAIN_INTERVAL_SECS`, 0 for none).
    pub retrain_interval: Option<Duration>,
    /// How many shards the objects are split into, so that several processes share
    /// forecasting (`FORECAST_SHARDS`): at most this many processes forecast.
    pub shards: u32,
}

impl Default for ForecastConfig {
    fn default() -> Self {
        ForecastConfig {
            interval: Duration::from_secs(60),
            hysteresis: 0.5,
            min_residence: Duration::from_secs(3600),
            models_dir: PathBuf::from("models"),
            move_budget_bytes_per_hour: None,
            retrain_interval: Some(Duration::from_secs(86_400)),
            shards: 16,
        }
    }
}

/// How the mover runs tier moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MoverConfig {
    /// Moves run at once by this process (`MOVER_CONCURRENCY`).
    pub concurrency: usize,
    /// Attempts before a move is `failed` (`MOVER_MAX_ATTEMPTS`).
    pub max_attempts: i64,
    /// First retry delay; doubles per attempt, with jitter (`MOVER_RETRY_BASE_MS`).
    pub retry_base: Duration,
    /// How long a claimed move stays this worker's without a heartbeat; after that,
    /// recovery in any process takes it over (`MOVER_LEASE_SECS`).
    pub lease: Duration,
    /// How often an idle worker looks for queued moves (`MOVER_POLL_MS`): those of other
    /// processes and retries coming due; a move this process queues wakes a worker.
    pub poll_interval: Duration,
    /// Cap on the bytes per second all moves of this process read, copying and
    /// verifying together; `None` is unlimited (`MOVER_BANDWIDTH_BYTES_PER_SEC`).
    pub bandwidth: Option<u64>,
    /// How a copy is checked before the catalogue switches to it (`MOVER_VERIFY`).
    pub verify: VerifyMode,
}

/// How the mover checks a copy before switching the catalogue to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyMode {
    /// End-to-end checksums, as S3 itself and rclone check: the source bytes are hashed
    /// as they stream and compared with the catalogue's checksum (a source damaged at
    /// rest fails the move), the destination checks every request's CRC32C on receipt and
    /// what it reports is compared with what was sent (the S3 backend does both), and
    /// the stored size is checked. Reads every byte once; trusts the destination to keep
    /// what it acknowledged.
    Checksum,
    /// Also read the whole copy back from the destination and compare size and checksum
    /// with the catalogue: catches damage at rest on the destination too, at twice the
    /// reads.
    Full,
}

impl Default for MoverConfig {
    fn default() -> Self {
        MoverConfig {
            concurrency: 2,
            max_attempts: 5,
            retry_base: Duration::from_secs(1),
            lease: Duration::from_secs(30),
            poll_interval: Duration::from_millis(500),
            bandwidth: None,
            verify: VerifyMode::Checksum,
        }
    }
}

/// How large transfers to S3 are split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransferConfig {
    /// Objects larger than this are uploaded in parts of this size.
    pub part_size: u64,
    /// Parts in flight at once per upload or download; memory use is about
    /// `part_size × this` per transfer.
    pub part_concurrency: usize,
}

impl Default for TransferConfig {
    fn default() -> Self {
        TransferConfig {
            part_size: 8 * 1024 * 1024,
            part_concurrency: 4,
        }
    }
}

impl Config {
    /// Reads the process environment (`.env` included once [`load_dotenv`] has loaded
    /// it, as the binary does before anything else).
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_lookup(|name| std::env::var(name).ok())
    }

    /// Like [`Config::from_env`], with the variables of the `.env`-format file at `path`
    /// taking precedence over the environment (`strata simulate --tiers FILE`: tiers,
    /// capacities and costs to try without touching the service's own settings).
    pub fn from_env_overridden_by(path: &Path) -> Result<Config, ConfigError> {
        let unreadable = |e: dotenvy::Error| ConfigError::DotEnv {
            path: path.display().to_string(),
            message: e.to_string(),
        };
        let overrides = dotenvy::from_path_iter(path)
            .map_err(unreadable)?
            .collect::<Result<HashMap<String, String>, _>>()
            .map_err(unreadable)?;
        Config::from_lookup(|name| {
            overrides
                .get(name)
                .cloned()
                .or_else(|| std::env::var(name).ok())
        })
    }

    /// Builds the configuration from a variable lookup; unset and empty variables take
    /// their defaults.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let vars = Vars(&lookup);
        let data_dir = PathBuf::from(vars.get("DATA_DIR").unwrap_or_else(|| "./data".into()));
        let database_url = database_url(&vars, &data_dir)?;
        let transfer = transfer_config(&vars)?;
        let (tiers, default_tier) = tiers_config(&vars, &data_dir)?;
        Ok(Config {
            mover: mover_config(&vars)?,
            listen: listen_addr(&vars)?,
            database_url,
            data_dir,
            tiers,
            default_tier,
            transfer,
            events: events_config(&vars)?,
            detector: detector_config(&vars)?,
            forecast: forecast_config(&vars)?,
            api: api_config(&vars)?,
            s3_endpoint: s3_endpoint_config(&vars)?,
            rules: rules_config(&vars)?,
            retention: retention_config(&vars)?,
        })
    }

    /// The configuration of tier `name`, if there is one.
    pub fn tier(&self, name: &str) -> Option<&TierConfig> {
        self.tiers.iter().find(|t| t.name == name)
    }
}

/// Loads `.env` from the working directory into the environment when there is one;
/// variables already set win.
pub fn load_dotenv() -> Result<(), ConfigError> {
    match dotenvy::dotenv() {
        Ok(_) => Ok(()),
        Err(e) if e.not_found() => Ok(()),
        Err(e) => Err(ConfigError::DotEnv {
            path: ".env".into(),
            message: e.to_string(),
        }),
    }
}

fn database_url(vars: &Vars<'_>, data_dir: &Path) -> Result<String, ConfigError> {
    let database_url = vars
        .secret("DATABASE_URL")?
        .unwrap_or_else(|| format!("sqlite://{}?mode=rwc", data_dir.join("strata.db").display()));
    if !(database_url.starts_with("postgres://")
        || database_url.starts_with("postgresql://")
        || database_url.starts_with("sqlite:"))
    {
        return Err(invalid(
            "DATABASE_URL",
            &redact_url(&database_url),
            "a postgres://… or sqlite://… URL",
        ));
    }
    Ok(database_url)
}

fn listen_addr(vars: &Vars<'_>) -> Result<SocketAddr, ConfigError> {
    let listen = vars
        .get("LISTEN_ADDR")
        .unwrap_or_else(|| DEFAULT_LISTEN_ADDR.into());
    listen.parse().map_err(|_| {
        invalid(
            "LISTEN_ADDR",
            &listen,
            "an address such as 127.0.0.1:8080 or [::]:8080",
        )
    })
}

fn transfer_config(vars: &Vars<'_>) -> Result<TransferConfig, ConfigError> {
    let defaults = TransferConfig::default();
    Ok(TransferConfig {
        part_size: vars.parse_in(
            "S3_PART_SIZE_BYTES",
            defaults.part_size,
            MIN_S3_PART_SIZE..=MAX_S3_PART_SIZE,
        )?,
        part_concurrency: vars.parse_in(
            "S3_PART_CONCURRENCY",
            defaults.part_concurrency,
            1..=64,
        )?,
    })
}

fn mover_config(vars: &Vars<'_>) -> Result<MoverConfig, ConfigError> {
    let defaults = MoverConfig::default();
    Ok(MoverConfig {
        concurrency: vars.parse_in("MOVER_CONCURRENCY", defaults.concurrency, 1..=64)?,
        max_attempts: vars.parse_in("MOVER_MAX_ATTEMPTS", defaults.max_attempts, 1..=100)?,
        retry_base: vars.parse_millis("MOVER_RETRY_BASE_MS", defaults.retry_base, 1..=3_600_000)?,
        lease: vars.parse_secs("MOVER_LEASE_SECS", defaults.lease, 2..=3600)?,
        poll_interval: vars.parse_millis("MOVER_POLL_MS", defaults.poll_interval, 10..=60_000)?,
        bandwidth: match vars.parse_in("MOVER_BANDWIDTH_BYTES_PER_SEC", 0, 0..=u64::MAX)? {
            0 => None,
            limit => Some(limit),
        },
        verify: match vars.get("MOVER_VERIFY").as_deref() {
            // `stream` was the name of the checksum level before it checked receipts.
            None | Some("checksum" | "stream") => VerifyMode::Checksum,
            Some("full") => VerifyMode::Full,
            Some(other) => return Err(invalid("MOVER_VERIFY", other, "checksum or full")),
        },
    })
}

fn events_config(vars: &Vars<'_>) -> Result<EventsConfig, ConfigError> {
    let defaults = EventsConfig::default();
    let access_topic = vars
        .get("KAFKA_ACCESS_TOPIC")
        .unwrap_or(defaults.access_topic);
    for (var, topic) in [
        ("KAFKA_ACCESS_TOPIC", Some(access_topic.clone())),
        ("KAFKA_DLQ_TOPIC", vars.get("KAFKA_DLQ_TOPIC")),
    ] {
        if let Some(topic) = topic
            && !is_valid_topic_name(&topic)
        {
            return Err(invalid(
                var,
                &topic,
                "a Kafka topic name of 1 to 249 characters: a-z, A-Z, 0-9, '.', '_' and '-'",
            ));
        }
    }
    let brokers = vars.get("KAFKA_BROKERS");
    Ok(EventsConfig {
        properties: kafka::kafka_properties(vars, brokers.is_some())?,
        brokers,
        dlq_topic: vars
            .get("KAFKA_DLQ_TOPIC")
            .unwrap_or_else(|| format!("{access_topic}.dlq")),
        access_topic,
        group_id: vars.get("KAFKA_GROUP_ID").unwrap_or(defaults.group_id),
        flush_interval: vars.parse_millis(
            "EVENTS_FLUSH_MS",
            defaults.flush_interval,
            10..=60_000,
        )?,
        flush_max_events: vars.parse_in(
            "EVENTS_FLUSH_MAX",
            defaults.flush_max_events,
            1..=10_000_000,
        )?,
        max_event_bytes: vars.parse_in(
            "EVENTS_MAX_BYTES",
            defaults.max_event_bytes,
            256..=16 * 1024 * 1024,
        )?,
        producer_queue: vars.parse_in(
            "KAFKA_PRODUCER_QUEUE",
            defaults.producer_queue,
            1..=10_000_000,
        )?,
        session_timeout: vars.parse_millis(
            "KAFKA_SESSION_TIMEOUT_MS",
            defaults.session_timeout,
            1_000..=3_600_000,
        )?,
        startup_timeout: match vars.get("KAFKA_STARTUP_TIMEOUT_MS") {
            None => None,
            Some(_) => Some(vars.parse_millis(
                "KAFKA_STARTUP_TIMEOUT_MS",
                Duration::ZERO,
                100..=3_600_000,
            )?),
        },
    })
}

fn api_config(vars: &Vars<'_>) -> Result<ApiConfig, ConfigError> {
    let defaults = ApiConfig::default();
    let token = vars.secret("API_TOKEN")?;
    let token_reads = vars.parse_bool("API_TOKEN_READS", false)?;
    if token_reads && token.is_none() {
        return Err(ConfigError::Missing {
            var: "API_TOKEN".into(),
            why: "API_TOKEN_READS=true protects reads with it".into(),
        });
    }
    Ok(ApiConfig {
        token,
        token_reads,
        max_object_bytes: vars.parse_in(
            "MAX_OBJECT_BYTES",
            defaults.max_object_bytes,
            1..=5 * 1024 * 1024 * 1024 * 1024,
        )?,
        request_timeout: vars.parse_secs(
            "API_REQUEST_TIMEOUT_SECS",
            defaults.request_timeout,
            1..=3600,
        )?,
    })
}

fn detector_config(vars: &Vars<'_>) -> Result<DetectorConfig, ConfigError> {
    let defaults = DetectorConfig::default();
    let expected = "a number of at least 1";
    let spike_ratio: f64 = vars
        .parse_opt("DETECTOR_SPIKE_RATIO", expected)?
        .unwrap_or(defaults.spike_ratio);
    if !(spike_ratio.is_finite() && spike_ratio >= 1.0) {
        return Err(invalid(
            "DETECTOR_SPIKE_RATIO",
            &spike_ratio.to_string(),
            expected,
        ));
    }
    Ok(DetectorConfig {
        window: vars.parse_secs("DETECTOR_WINDOW_SECS", defaults.window, 6..=3600)?,
        settle: vars.parse_millis("DETECTOR_SETTLE_MS", defaults.settle, 0..=60_000)?,
        cooldown: vars.parse_secs("DETECTOR_COOLDOWN_SECS", defaults.cooldown, 0..=7 * 86_400)?,
        spike_ratio,
    })
}

fn forecast_config(vars: &Vars<'_>) -> Result<ForecastConfig, ConfigError> {
    let defaults = ForecastConfig::default();
    let expected = "a number from 0 to 1";
    let hysteresis: f64 = vars
        .parse_opt("FORECAST_HYSTERESIS", expected)?
        .unwrap_or(defaults.hysteresis);
    if !(0.0..=1.0).contains(&hysteresis) {
        return Err(invalid(
            "FORECAST_HYSTERESIS",
            &hysteresis.to_string(),
            expected,
        ));
    }
    Ok(ForecastConfig {
        interval: vars.parse_secs("FORECAST_INTERVAL_SECS", defaults.interval, 1..=86_400)?,
        hysteresis,
        min_residence: vars.parse_secs(
            "FORECAST_MIN_RESIDENCE_SECS",
            defaults.min_residence,
            0..=30 * 86_400,
        )?,
        models_dir: vars
            .get("MODELS_DIR")
            .map_or(defaults.models_dir, PathBuf::from),
        move_budget_bytes_per_hour: vars
            .parse_opt("MOVE_BUDGET_BYTES_PER_HOUR", "a whole number of bytes")?,
        retrain_interval: Some(vars.parse_secs(
            "FORECAST_RETRAIN_INTERVAL_SECS",
            defaults.retrain_interval.unwrap_or_default(),
            0..=30 * 86_400,
        )?)
        .filter(|every| !every.is_zero()),
        shards: vars.parse_in("FORECAST_SHARDS", defaults.shards, 1..=1024)?,
    })
}

fn retention_config(vars: &Vars<'_>) -> Result<RetentionConfig, ConfigError> {
    let defaults = RetentionConfig::default();
    const TEN_YEARS: u64 = 10 * 365 * 86_400;
    Ok(RetentionConfig {
        minute_buckets: vars.parse_secs(
            "RETENTION_MINUTE_BUCKETS_SECS",
            defaults.minute_buckets,
            3600..=TEN_YEARS,
        )?,
        hour_buckets: vars.parse_secs(
            "RETENTION_HOUR_BUCKETS_SECS",
            defaults.hour_buckets,
            86_400..=TEN_YEARS,
        )?,
        finished: Some(vars.parse_secs("RETENTION_MOVES_SECS", Duration::ZERO, 0..=TEN_YEARS)?)
            .filter(|keep| !keep.is_zero()),
        interval: vars.parse_secs("RETENTION_INTERVAL_SECS", defaults.interval, 1..=86_400)?,
    })
}

fn rules_config(vars: &Vars<'_>) -> Result<RulesConfig, ConfigError> {
    let defaults = RulesConfig::default();
    Ok(RulesConfig {
        file: vars.get("RULES_FILE").map(PathBuf::from),
        interval: vars.parse_secs("RULES_INTERVAL_SECS", defaults.interval, 1..=86_400)?,
        day: vars.parse_secs("RULES_DAY_SECS", defaults.day, 1..=86_400)?,
    })
}

fn is_valid_topic_name(topic: &str) -> bool {
    (1..=249).contains(&topic.len())
        && topic != "."
        && topic != ".."
        && topic
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn parse(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn retention_keeps_history_for_its_readers_and_moves_unless_told() {
        let config = parse(&[]).unwrap();
        assert_eq!(config.retention, RetentionConfig::default());
        assert_eq!(config.retention.finished, None);
        let set = parse(&[
            ("RETENTION_MINUTE_BUCKETS_SECS", "7200"),
            ("RETENTION_MOVES_SECS", "86400"),
        ])
        .unwrap();
        assert_eq!(set.retention.minute_buckets, Duration::from_secs(7200));
        assert_eq!(set.retention.finished, Some(Duration::from_secs(86_400)));
        for (var, value) in [
            ("RETENTION_MINUTE_BUCKETS_SECS", "60"),
            ("RETENTION_HOUR_BUCKETS_SECS", "3600"),
            ("RETENTION_MOVES_SECS", "-1"),
        ] {
            let err = parse(&[(var, value)]).unwrap_err();
            assert!(
                matches!(err, ConfigError::Invalid { var: ref v, .. } if v == var),
                "{var}"
            );
        }
    }

    #[test]
    fn embedded_defaults_need_no_variables() {
        let config = parse(&[]).unwrap();
        assert_eq!(config.database_url, "sqlite://./data/strata.db?mode=rwc");
        assert_eq!(config.listen.to_string(), "127.0.0.1:8080");
        let names: Vec<_> = config.tiers.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["onprem", "private", "public"]);
        assert_eq!(config.default_tier, "public");
        assert_eq!(
            config.tier("private").unwrap().backend,
            BackendConfig::File {
                root: PathBuf::from("./data/tiers/private")
            }
        );
        assert_eq!(config.transfer, TransferConfig::default());
        assert_eq!(config.mover, MoverConfig::default());
        assert_eq!(config.events, EventsConfig::default());
        assert_eq!(config.detector, DetectorConfig::default());
        assert_eq!(config.api, ApiConfig::default());
        let thresholds: Vec<_> = config.tiers.iter().map(|t| t.promote_above).collect();
        assert_eq!(thresholds, [Some(100), Some(20), None]);
        let thresholds: Vec<_> = config.tiers.iter().map(|t| t.predict_above).collect();
        assert_eq!(thresholds, [Some(50.0), Some(10.0), None]);
        assert_eq!(config.forecast, ForecastConfig::default());
    }

    #[test]
    fn forecast_settings_are_read_and_checked() {
        let config = parse(&[
            ("FORECAST_INTERVAL_SECS", "5"),
            ("FORECAST_HYSTERESIS", "0.8"),
            ("FORECAST_MIN_RESIDENCE_SECS", "0"),
            ("MODELS_DIR", "/srv/models"),
            ("TIER_ONPREM_PREDICT_ABOVE", "120.5"),
            ("TIER_PRIVATE_PREDICT_ABOVE", "none"),
            ("FORECAST_SHARDS", "6"),
        ])
        .unwrap();
        assert_eq!(config.forecast.shards, 6);
        assert_eq!(config.forecast.interval, Duration::from_secs(5));
        assert_eq!(config.forecast.hysteresis, 0.8);
        assert_eq!(config.forecast.min_residence, Duration::ZERO);
        assert_eq!(config.forecast.models_dir, PathBuf::from("/srv/models"));
        let thresholds: Vec<_> = config.tiers.iter().map(|t| t.predict_above).collect();
        assert_eq!(thresholds, [Some(120.5), None, None]);
        assert_eq!(
            ForecastConfig::default().retrain_interval,
            Some(Duration::from_secs(86_400))
        );
        let retrain = |value| {
            parse(&[("FORECAST_RETRAIN_INTERVAL_SECS", value)])
                .unwrap()
                .forecast
                .retrain_interval
        };
        assert_eq!(retrain("0"), None, "0 turns retraining off");
        assert_eq!(retrain("600"), Some(Duration::from_secs(600)));
        for (var, value) in [
            ("FORECAST_RETRAIN_INTERVAL_SECS", "-1"),
            ("FORECAST_RETRAIN_INTERVAL_SECS", "2592001"),
            ("FORECAST_INTERVAL_SECS", "0"),
            ("FORECAST_SHARDS", "0"),
            ("FORECAST_SHARDS", "1025"),
            ("FORECAST_HYSTERESIS", "1.5"),
            ("FORECAST_HYSTERESIS", "NaN"),
            ("TIER_ONPREM_PREDICT_ABOVE", "-3"),
            ("TIER_ONPREM_PREDICT_ABOVE", "inf"),
            ("TIER_ONPREM_PREDICT_ABOVE", "lots"),
        ] {
            assert!(
                matches!(parse(&[(var, value)]), Err(ConfigError::Invalid { var: ref v, .. }) if v == var),
                "{var}={value} accepted"
            );
        }
    }

    #[test]
    fn event_and_detector_settings_are_read_and_checked() {
        let config = parse(&[
            ("KAFKA_BROKERS", "k1:9092,k2:9092"),
            ("KAFKA_ACCESS_TOPIC", "reads"),
            ("TIER_PRIVATE_PROMOTE_ABOVE", "none"),
            ("TIER_PUBLIC_PROMOTE_ABOVE", "5"),
            ("DETECTOR_SPIKE_RATIO", "1.5"),
        ])
        .unwrap();
        assert_eq!(config.events.brokers.as_deref(), Some("k1:9092,k2:9092"));
        assert_eq!(config.events.dlq_topic, "reads.dlq");
        assert_eq!(config.detector.spike_ratio, 1.5);
        let thresholds: Vec<_> = config.tiers.iter().map(|t| t.promote_above).collect();
        assert_eq!(thresholds, [Some(100), None, Some(5)]);
        for (var, value) in [
            ("KAFKA_ACCESS_TOPIC", "no spaces"),
            ("TIER_ONPREM_PROMOTE_ABOVE", "many"),
            ("DETECTOR_SPIKE_RATIO", "0.5"),
            ("EVENTS_FLUSH_MS", "0"),
        ] {
            assert!(
                matches!(parse(&[(var, value)]), Err(ConfigError::Invalid { var: ref v, .. }) if v == var),
                "{var}={value} accepted"
            );
        }
    }

    #[test]
    fn api_settings_are_read_and_the_token_stays_out_of_debug_output() {
        let config = parse(&[
            ("API_TOKEN", "s3cret-token"),
            ("API_TOKEN_READS", "true"),
            ("MAX_OBJECT_BYTES", "1048576"),
            ("API_REQUEST_TIMEOUT_SECS", "5"),
        ])
        .unwrap();
        assert_eq!(config.api.token.as_deref(), Some("s3cret-token"));
        assert!(config.api.token_reads);
        assert_eq!(config.api.max_object_bytes, 1_048_576);
        assert_eq!(config.api.request_timeout, Duration::from_secs(5));
        assert!(!format!("{config:?}").contains("s3cret"));
        assert!(matches!(
            parse(&[("API_TOKEN_READS", "true")]),
            Err(ConfigError::Missing { var, .. }) if var == "API_TOKEN"
        ));
        assert!(parse(&[("MAX_OBJECT_BYTES", "0")]).is_err());
    }

    #[test]
    fn mover_settings_are_read_and_bounded() {
        let config = parse(&[("MOVER_CONCURRENCY", "8"), ("MOVER_LEASE_SECS", "5")]).unwrap();
        assert_eq!(config.mover.concurrency, 8);
        assert_eq!(config.mover.lease, Duration::from_secs(5));
        assert_eq!(config.mover.bandwidth, None);
        assert_eq!(config.mover.verify, VerifyMode::Checksum);
        let limited = parse(&[
            ("MOVER_BANDWIDTH_BYTES_PER_SEC", "1048576"),
            ("MOVER_VERIFY", "full"),
        ])
        .unwrap();
        assert_eq!(limited.mover.bandwidth, Some(1_048_576));
        assert_eq!(limited.mover.verify, VerifyMode::Full);
        let renamed = parse(&[("MOVER_VERIFY", "stream")]).unwrap();
        assert_eq!(renamed.mover.verify, VerifyMode::Checksum);
        assert!(matches!(
            parse(&[("MOVER_VERIFY", "sometimes")]),
            Err(ConfigError::Invalid { ref var, .. }) if var == "MOVER_VERIFY"
        ));
        let err = parse(&[("MOVER_LEASE_SECS", "1")]).unwrap_err();
        assert!(matches!(err, ConfigError::Invalid { ref var, .. } if var == "MOVER_LEASE_SECS"));
    }

    #[test]
    fn an_https_tier_trusts_its_ca_bundle() {
        let dir = tempfile::tempdir().unwrap();
        let pem = dir.path().join("ca.pem");
        std::fs::write(
            &pem,
            "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let pem = pem.display().to_string();
        let ca_of = |endpoint: &str, var: &str, path: &str| {
            parse(&[
                ("TIER_PUBLIC_URL", "s3://strata-public"),
                ("TIER_PUBLIC_ENDPOINT", endpoint),
                (var, path),
            ])
            .map(|config| match &config.tier("public").unwrap().backend {
                BackendConfig::S3(s3) => s3.ca_certificates.is_some(),
                BackendConfig::File { .. } => panic!("not an S3 tier"),
            })
        };
        assert!(ca_of("https://s3.internal", "TIER_PUBLIC_CA_BUNDLE", &pem).unwrap());
        assert!(ca_of("https://s3.internal", "AWS_CA_BUNDLE", &pem).unwrap());
        // Plain HTTP has no certificate to check.
        assert!(!ca_of("http://127.0.0.1:9000", "AWS_CA_BUNDLE", &pem).unwrap());
        let missing = ca_of(
            "https://s3.internal",
            "TIER_PUBLIC_CA_BUNDLE",
            "/nonexistent.pem",
        );
        assert!(matches!(
            missing,
            Err(ConfigError::Invalid { ref var, .. }) if var == "TIER_PUBLIC_CA_BUNDLE"
        ));
        let not_pem = dir.path().join("not.pem");
        std::fs::write(&not_pem, "hello").unwrap();
        let not_pem = ca_of(
            "https://s3.internal",
            "TIER_PUBLIC_CA_BUNDLE",
            &not_pem.display().to_string(),
        );
        assert!(not_pem.is_err());
    }

    #[test]
    fn s3_tier_reads_its_settings() {
        let config = parse(&[
            ("TIER_PUBLIC_URL", "s3://strata-public/"),
            ("TIER_PUBLIC_ENDPOINT", "http://127.0.0.1:9000"),
            ("TIER_PUBLIC_ACCESS_KEY_ID", "ak"),
            ("TIER_PUBLIC_SECRET_ACCESS_KEY", "sk"),
            ("TIER_PUBLIC_CAPACITY_BYTES", "1000"),
            ("TIER_PUBLIC_COST_GB_MONTH", "0.023"),
        ])
        .unwrap();
        let public = config.tier("public").unwrap();
        assert_eq!(public.capacity_bytes, Some(1000));
        assert_eq!(public.costs.storage_gb_month, 0.023);
        let BackendConfig::S3(s3) = &public.backend else {
            panic!("expected an S3 backend, got {:?}", public.backend);
        };
        assert_eq!(s3.bucket, "strata-public");
        assert!(s3.path_style, "a custom endpoint defaults to path-style");
        assert!(s3.sign_payload, "plain http defaults to signed payloads");
        assert_eq!(s3.region, "us-east-1");
        assert_eq!(s3.credentials.as_ref().unwrap().access_key_id, "ak");
        assert!(
            !format!("{s3:?}").contains("sk\""),
            "secret leaked into Debug"
        );
    }

    #[test]
    fn malformed_number_names_variable_value_and_expectation() {
        let err = parse(&[("S3_PART_CONCURRENCY", "four")]).unwrap_err();
        assert_eq!(
            err,
            invalid("S3_PART_CONCURRENCY", "four", "a whole number from 1 to 64")
        );
        assert_eq!(
            err.to_string(),
            "invalid value \"four\" for S3_PART_CONCURRENCY: expected a whole number from 1 to 64"
        );
    }

    #[test]
    fn payload_signing_defaults_to_what_protects_the_bytes_in_transit() {
        let sign = |vars: &[(&str, &str)]| {
            let mut all = vec![("TIER_PUBLIC_URL", "s3://strata-public")];
            all.extend_from_slice(vars);
            let config = parse(&all).unwrap();
            match &config.tier("public").unwrap().backend {
                BackendConfig::S3(s3) => s3.sign_payload,
                other => panic!("expected an S3 backend, got {other:?}"),
            }
        };
        assert!(!sign(&[]), "AWS: TLS protects the bytes");
        assert!(!sign(&[("TIER_PUBLIC_ENDPOINT", "https://s3.example.com")]));
        assert!(sign(&[("TIER_PUBLIC_ENDPOINT", "http://127.0.0.1:9000")]));
        assert!(!sign(&[
            ("TIER_PUBLIC_ENDPOINT", "http://127.0.0.1:9000"),
            ("TIER_PUBLIC_SIGN_PAYLOAD", "false"),
        ]));
        assert!(sign(&[("TIER_PUBLIC_SIGN_PAYLOAD", "true")]));
        assert!(matches!(
            parse(&[("TIER_PUBLIC_URL", "s3://strata-public"), ("TIER_PUBLIC_SIGN_PAYLOAD", "maybe")]),
            Err(ConfigError::Invalid { ref var, .. }) if var == "TIER_PUBLIC_SIGN_PAYLOAD"
        ));
    }

    #[test]
    fn out_of_range_part_size_is_refused() {
        let err = parse(&[("S3_PART_SIZE_BYTES", "1024")]).unwrap_err();
        assert!(matches!(err, ConfigError::Invalid { ref var, .. } if var == "S3_PART_SIZE_BYTES"));
    }

    #[test]
    fn bad_tier_settings_are_refused() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("TIERS", "hot,Cold")], "TIERS"),
            (&[("TIERS", "hot,hot")], "TIERS"),
            (&[("DEFAULT_TIER", "glacier")], "DEFAULT_TIER"),
            (&[("TIER_ONPREM_URL", "ftp://x")], "TIER_ONPREM_URL"),
            (&[("TIER_ONPREM_URL", "s3://A_B")], "TIER_ONPREM_URL"),
            (
                &[("TIER_ONPREM_CAPACITY_BYTES", "-5")],
                "TIER_ONPREM_CAPACITY_BYTES",
            ),
            (
                &[("TIER_ONPREM_COST_GB_MONTH", "-1")],
                "TIER_ONPREM_COST_GB_MONTH",
            ),
            (
                &[
                    ("TIER_ONPREM_URL", "s3://b-1"),
                    ("TIER_ONPREM_PATH_STYLE", "maybe"),
                ],
                "TIER_ONPREM_PATH_STYLE",
            ),
            (
                &[
                    ("TIER_ONPREM_URL", "s3://b-1"),
                    ("TIER_ONPREM_ENDPOINT", "localhost:9000"),
                ],
                "TIER_ONPREM_ENDPOINT",
            ),
            (&[("DATABASE_URL", "mysql://x")], "DATABASE_URL"),
            (&[("LISTEN_ADDR", "localhost")], "LISTEN_ADDR"),
        ];
        for (vars, expected_var) in cases {
            match parse(vars) {
                Err(ConfigError::Invalid { var, .. }) => assert_eq!(&var, expected_var, "{vars:?}"),
                other => panic!(
                    "{vars:?}: expected an Invalid error naming {expected_var}, got {other:?}"
                ),
            }
        }
    }

    #[test]
    fn half_a_key_pair_is_refused() {
        let err = parse(&[
            ("TIER_PUBLIC_URL", "s3://bkt"),
            ("TIER_PUBLIC_ACCESS_KEY_ID", "ak"),
        ])
        .unwrap_err();
        assert!(
            matches!(err, ConfigError::Missing { ref var, .. } if var == "TIER_PUBLIC_SECRET_ACCESS_KEY")
        );
    }
}
