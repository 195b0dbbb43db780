//! Memory of the spike detector per tracked object: RSS growth while it tracks
//! OBJECTS distinct objects (default 1,000,000), each seen once. Prints one JSON line.
//!
//! ```text
//! cargo bench --bench detector_memory -- [OBJECTS]
//! ```

use strata::config::DetectorConfig;
use strata::detector::Detector;

mod support;
use support::rss_bytes;

fn main() {
    let objects: u64 = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with("--"))
        .map_or(1_000_000, |a| a.parse().expect("OBJECTS is a number"));
    // Ids as the catalogue makes them, built before measuring.
    let ids: Vec<String> = (0..objects)
        .map(|i| {
            uuid::Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0000 | u128::from(i))
                .to_string()
        })
        .collect();
    let before = rss_bytes();
    let mut detector = Detector::new(&DetectorConfig::default(), &[100, 20]);
    let at = 1_795_255_200_000;
    for (i, id) in ids.iter().enumerate() {
        detector.observe(id, at + i as i64 / 1000, 1, at);
    }
    let after = rss_bytes();
    assert_eq!(detector.tracked() as u64, objects);
    println!(
        "{}",
        serde_json::json!({
            "bench": "detector_memory",
            "objects": objects,
            "rss_growth_bytes": after - before,
            "bytes_per_object": ((after - before) as f64 / objects as f64 * 10.0).round() / 10.0,
        })
    );
}
