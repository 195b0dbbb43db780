//! The catalogue contract, run against PostgreSQL (the local stack's server, a fresh
//! database per test) and SQLite (a fresh file per test) alike.

mod common;

use std::future::Future;

use common::{TestDb, sqlite_catalogue};
use strata::db::{
    AccessCount, Catalogue, CatalogueError, ConsumerOffset, HOUR_MS, MINUTE_MS, MigrationFilter,
    MigrationReason, MigrationStatus, NewMigration, NewObject, ObjectContent, ObjectFilter, new_id,
};

async fn on_postgres<F, Fut>(test: F)
where
    F: FnOnce(Catalogue) -> Fut,
    Fut: Future<Output = ()>,
{
    let db = TestDb::postgres().await;
    let catalogue = Catalogue::connect(&db.url)
        .await
        .expect("open PostgreSQL catalogue");
    test(catalogue.clone()).await;
    catalogue.close().await;
    db.drop_db().await;
}

async fn on_sqlite<F, Fut>(test: F)
where
    F: FnOnce(Catalogue) -> Fut,
    Fut: Future<Output = ()>,
{
    let (catalogue, _dir) = sqlite_catalogue().await;
    test(catalogue.clone()).await;
    catalogue.close().await;
}

fn content(tier: &str, size: i64) -> ObjectContent {
    ObjectContent {
        size,
        content_type: "text/plain".into(),
        checksum: format!("blake3:{size:064x}"),
        tier: tier.into(),
        location: format!("objects/{}", new_id()),
    }
}

async fn add_object(c: &Catalogue, key: &str, tier: &str) -> strata::db::ObjectRecord {
    c.insert_object(&NewObject {
        id: new_id(),
        key: key.into(),
        content: content(tier, 100),
    })
    .await
    .unwrap()
}

async fn object_lifecycle(c: Catalogue) {
    let id = new_id();
    let created = c
        .insert_object(&NewObject {
            id: id.clone(),
            key: "docs/report.pdf".into(),
            content: content("public", 1234),
        })
        .await
        .unwrap();
    assert_eq!(created.id, id);
    assert_eq!(created.version, 1);
    assert_eq!(created.size, 1234);
    assert_eq!(created.access_total, 0);
    assert_eq!(created.last_access_at, None);
    assert_eq!(c.get_object(&id).await.unwrap(), created);
    assert_eq!(
        c.find_object_by_key("docs/report.pdf").await.unwrap(),
        Some(created.clone())
    );
    assert_eq!(c.find_object_by_key("docs/other").await.unwrap(), None);

    // Rewrite: new content, version bumps; a writer holding the old version loses.
    let rewritten = c
        .replace_object_content(&id, 1, &content("public", 99))
        .await
        .unwrap();
    assert_eq!((rewritten.version, rewritten.size), (2, 99));
    assert!(matches!(
        c.replace_object_content(&id, 1, &content("public", 5))
            .await,
        Err(CatalogueError::Stale { .. })
    ));

    // Tier switch keeps content and version, and is refused for a stale version.
    assert!(matches!(
        c.switch_object_tier(&id, 1, "onprem", "objects/x").await,
        Err(CatalogueError::Stale { .. })
    ));
    let moved = c
        .switch_object_tier(&id, 2, "onprem", "objects/x")
        .await
        .unwrap();
    assert_eq!(
        (moved.tier.as_str(), moved.location.as_str()),
        ("onprem", "objects/x")
    );
    assert_eq!((moved.version, moved.checksum), (2, rewritten.checksum));

    let deleted = c.delete_object(&id).await.unwrap();
    assert_eq!(deleted.id, id);
    assert!(matches!(
        c.get_object(&id).await,
        Err(CatalogueError::NotFound { .. })
    ));
    assert!(matches!(
        c.delete_object(&id).await,
        Err(CatalogueError::NotFound { .. })
    ));
    assert!(matches!(
        c.switch_object_tier(&id, 2, "public", "y").await,
        Err(CatalogueError::NotFound { .. })
    ));
}

async fn keys_and_ids_are_unique(c: Catalogue) {
    let first = add_object(&c, "same-key", "public").await;
    let again = c
        .insert_object(&NewObject {
            id: new_id(),
            key: "same-key".into(),
            content: content("public", 1),
        })
        .await;
    assert!(
        matches!(again, Err(CatalogueError::Conflict(_))),
        "{again:?}"
    );
    let same_id = c
        .insert_object(&NewObject {
            id: first.id.clone(),
            key: "other-key".into(),
            content: content("public", 1),
        })
        .await;
    assert!(
        matches!(same_id, Err(CatalogueError::Conflict(_))),
        "{same_id:?}"
    );
}

async fn list_pages_with_cursor_and_filters(c: Catalogue) {
    let mut ids = Vec::new();
    for i in 0..25 {
        let tier = if i % 5 == 0 { "onprem" } else { "public" };
        ids.push(add_object(&c, &format!("logs/{i:02}"), tier).await.id);
    }
    add_object(&c, "Logs/upper", "public").await;

    let mut seen = Vec::new();
    let mut after = None;
    let mut pages = 0;
    loop {
        let page = c
            .list_objects(
                &ObjectFilter {
                    key_prefix: Some("logs/".into()),
                    ..Default::default()
                },
                10,
                after.as_deref(),
            )
            .await
            .unwrap();
        pages += 1;
        seen.extend(page.items.iter().map(|o| o.id.clone()));
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(
        seen, ids,
        "every object once, in creation order; prefix is case-sensitive"
    );

    let onprem = c
        .list_objects(
            &ObjectFilter {
                tier: Some("onprem".into()),
                ..Default::default()
            },
            100,
            None,
        )
        .await
        .unwrap();
    assert_eq!(onprem.items.len(), 5);
    assert!(onprem.items.iter().all(|o| o.tier == "onprem"));
    assert_eq!(onprem.next, None);

    let clamped = c
        .list_objects(&ObjectFilter::default(), 0, None)
        .await
        .unwrap();
    assert_eq!(clamped.items.len(), 1, "a zero limit still returns one row");
}

async fn access_counts_add_up_in_buckets(c: Catalogue) {
    let a = add_object(&c, "a", "public").await;
    let b = add_object(&c, "b", "public").await;
    let hour = 1_790_000_000_000 / HOUR_MS * HOUR_MS;
    let at = |offset| hour + offset;
    let count = |id: &str, at_ms, hits| AccessCount {
        object_id: id.into(),
        at_ms,
        hits,
    };
    let offsets = |next| {
        vec![ConsumerOffset {
            group_id: "g".into(),
            topic: "access-events".into(),
            partition: 2,
            next_offset: next,
        }]
    };

    c.record_access(
        &[
            count(&a.id, at(1_000), 3),
            count(&a.id, at(2_000), 2), // same minute as the first: merged
            count(&a.id, at(MINUTE_MS + 5), 4),
            count(&b.id, at(HOUR_MS + 10), 1),
        ],
        &offsets(40),
    )
    .await
    .unwrap();
    // A second batch adds to the existing buckets rather than replacing them.
    c.record_access(&[count(&a.id, at(3_000), 10)], &offsets(41))
        .await
        .unwrap();

    assert_eq!(
        c.access_history(&a.id, MINUTE_MS, hour, hour + HOUR_MS)
            .await
            .unwrap(),
        [(hour, 15), (hour + MINUTE_MS, 4)]
    );
    assert_eq!(
        c.access_history(&a.id, HOUR_MS, 0, i64::MAX).await.unwrap(),
        [(hour, 19)]
    );
    assert_eq!(
        c.access_history(&b.id, HOUR_MS, 0, i64::MAX).await.unwrap(),
        [(hour + HOUR_MS, 1)]
    );

    let a_now = c.get_object(&a.id).await.unwrap();
    assert_eq!(a_now.access_total, 19);
    assert_eq!(
        a_now.last_access_at,
        Some(at(MINUTE_MS + 5)),
        "older events never move it back"
    );

    let summary = c
        .access_summary(&a.id, at(MINUTE_MS + 30_000))
        .await
        .unwrap();
    assert_eq!(
        (
            summary.last_minute,
            summary.last_hour,
            summary.last_day,
            summary.total
        ),
        (4, 19, 19, 19)
    );
    let later = c.access_summary(&a.id, at(2 * HOUR_MS)).await.unwrap();
    assert_eq!(
        (later.last_minute, later.last_hour, later.last_day),
        (0, 0, 19)
    );

    let stored = c.consumer_offsets("g", "access-events").await.unwrap();
    assert_eq!(stored, offsets(41));
    assert!(
        c.consumer_offsets("other", "access-events")
            .await
            .unwrap()
            .is_empty()
    );
}

async fn migrations_follow_the_state_machine(c: Catalogue) {
    let obj = add_object(&c, "moving", "public").await;
    let new = NewMigration {
        object_id: obj.id.clone(),
        object_version: obj.version,
        from_tier: "public".into(),
        to_tier: "onprem".into(),
        reason: MigrationReason::ReactiveAccessSpike,
        bytes_total: obj.size,
    };
    let m = c.enqueue_migration(&new).await.unwrap();
    assert_eq!(m.status, MigrationStatus::Pending);
    assert_eq!((m.attempts, m.bytes_copied, m.bytes_total), (0, 0, 100));
    assert_eq!((m.started_at, m.finished_at), (None, None));

    // One active move per object.
    assert!(matches!(
        c.enqueue_migration(&NewMigration {
            reason: MigrationReason::Manual,
            ..new.clone()
        })
        .await,
        Err(CatalogueError::Conflict(_))
    ));

    let copying = c
        .transition_migration(
            &m.id,
            MigrationStatus::Pending,
            MigrationStatus::Copying,
            None,
        )
        .await
        .unwrap();
    assert_eq!(copying.attempts, 1);
    assert!(copying.started_at.is_some());
    c.record_migration_progress(&m.id, 60).await.unwrap();
    assert_eq!(c.get_migration(&m.id).await.unwrap().bytes_copied, 60);

    // A second worker that still thinks the move is pending loses.
    assert!(matches!(
        c.transition_migration(
            &m.id,
            MigrationStatus::Pending,
            MigrationStatus::Copying,
            None
        )
        .await,
        Err(CatalogueError::Stale { .. })
    ));
    // Skipping verification is not a transition the state machine has.
    assert!(matches!(
        c.transition_migration(
            &m.id,
            MigrationStatus::Copying,
            MigrationStatus::Completed,
            None
        )
        .await,
        Err(CatalogueError::Conflict(_))
    ));

    // Failed attempt goes back to the queue with its error; the retry resets progress.
    let retry = c
        .transition_migration(
            &m.id,
            MigrationStatus::Copying,
            MigrationStatus::Pending,
            Some("destination unreachable"),
        )
        .await
        .unwrap();
    assert_eq!(retry.error.as_deref(), Some("destination unreachable"));
    let second = c
        .transition_migration(
            &m.id,
            MigrationStatus::Pending,
            MigrationStatus::Copying,
            None,
        )
        .await
        .unwrap();
    assert_eq!((second.attempts, second.bytes_copied), (2, 0));
    assert_eq!(
        second.started_at, copying.started_at,
        "started_at is the first attempt's"
    );
    assert_eq!(second.error, None);

    c.transition_migration(
        &m.id,
        MigrationStatus::Copying,
        MigrationStatus::Verifying,
        None,
    )
    .await
    .unwrap();
    let done = c
        .transition_migration(
            &m.id,
            MigrationStatus::Verifying,
            MigrationStatus::Completed,
            None,
        )
        .await
        .unwrap();
    assert_eq!(done.status, MigrationStatus::Completed);
    assert!(done.finished_at.is_some());
    assert!(matches!(
        c.transition_migration(
            &m.id,
            MigrationStatus::Completed,
            MigrationStatus::Pending,
            None
        )
        .await,
        Err(CatalogueError::Conflict(_))
    ));

    // With the move finished, the object may be moved again.
    let next = c.enqueue_migration(&new).await.unwrap();
    let cancelled = c
        .transition_migration(
            &next.id,
            MigrationStatus::Pending,
            MigrationStatus::Cancelled,
            None,
        )
        .await
        .unwrap();
    assert!(cancelled.finished_at.is_some());
    assert!(matches!(
        c.get_migration("nope").await,
        Err(CatalogueError::NotFound { .. })
    ));
}

async fn concurrent_enqueues_admit_exactly_one(c: Catalogue) {
    let obj = add_object(&c, "raced", "public").await;
    let attempts = (0..8).map(|i| {
        let c = c.clone();
        let new = NewMigration {
            object_id: obj.id.clone(),
            object_version: 1,
            from_tier: "public".into(),
            to_tier: if i % 2 == 0 { "onprem" } else { "private" }.into(),
            reason: MigrationReason::ReactiveAccessSpike,
            bytes_total: 100,
        };
        tokio::spawn(async move { c.enqueue_migration(&new).await })
    });
    let mut won = 0;
    for attempt in attempts {
        match attempt.await.unwrap() {
            Ok(_) => won += 1,
            Err(CatalogueError::Conflict(_)) => {}
            Err(other) => panic!("unexpected error {other}"),
        }
    }
    assert_eq!(won, 1);
}

async fn migrations_list_newest_first_with_filters(c: Catalogue) {
    let mut ids = Vec::new();
    for i in 0..7 {
        let obj = add_object(&c, &format!("m{i}"), "public").await;
        let m = c
            .enqueue_migration(&NewMigration {
                object_id: obj.id.clone(),
                object_version: 1,
                from_tier: "public".into(),
                to_tier: "private".into(),
                reason: if i < 3 {
                    MigrationReason::Manual
                } else {
                    MigrationReason::ProactivePrediction
                },
                bytes_total: 100,
            })
            .await
            .unwrap();
        ids.push(m.id);
    }
    c.transition_migration(
        &ids[0],
        MigrationStatus::Pending,
        MigrationStatus::Failed,
        Some("x"),
    )
    .await
    .unwrap();

    let first = c
        .list_migrations(&MigrationFilter::default(), 4, None)
        .await
        .unwrap();
    let second = c
        .list_migrations(&MigrationFilter::default(), 4, first.next.as_deref())
        .await
        .unwrap();
    assert_eq!(second.next, None);
    let listed: Vec<_> = first
        .items
        .iter()
        .chain(&second.items)
        .map(|m| m.id.clone())
        .collect();
    let newest_first: Vec<_> = ids.iter().rev().cloned().collect();
    assert_eq!(listed, newest_first);

    let manual = c
        .list_migrations(
            &MigrationFilter {
                reason: Some(MigrationReason::Manual),
                status: Some(MigrationStatus::Pending),
                ..Default::default()
            },
            100,
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        manual.items.iter().map(|m| &m.id).collect::<Vec<_>>(),
        [&ids[2], &ids[1]]
    );

    let counts = c.migration_counts().await.unwrap();
    assert_eq!(
        counts,
        [
            (MigrationStatus::Failed, MigrationReason::Manual, 1),
            (MigrationStatus::Pending, MigrationReason::Manual, 2),
            (
                MigrationStatus::Pending,
                MigrationReason::ProactivePrediction,
                4
            ),
        ]
    );

    let one = c
        .list_migrations(
            &MigrationFilter {
                object_id: Some(c.get_migration(&ids[4]).await.unwrap().object_id),
                ..Default::default()
            },
            100,
            None,
        )
        .await
        .unwrap();
    assert_eq!(one.items.len(), 1);
}

macro_rules! contract {
    ($($test:ident),* $(,)?) => {
        mod postgres {
            $(#[tokio::test]
            async fn $test() {
                super::on_postgres(super::$test).await;
            })*
        }
        mod sqlite {
            $(#[tokio::test]
            async fn $test() {
                super::on_sqlite(super::$test).await;
            })*
        }
    };
}

contract!(
    object_lifecycle,
    keys_and_ids_are_unique,
    list_pages_with_cursor_and_filters,
    access_counts_add_up_in_buckets,
    migrations_follow_the_state_machine,
    concurrent_enqueues_admit_exactly_one,
    migrations_list_newest_first_with_filters,
);

/// Connecting again re-runs the embedded migrations; they must find nothing to do and
/// leave the data alone.
async fn reopen_keeps_data(url: &str) {
    let first = Catalogue::connect(url).await.unwrap();
    let obj = add_object(&first, "persisted", "public").await;
    first.close().await;
    let second = Catalogue::connect(url).await.unwrap();
    assert_eq!(second.get_object(&obj.id).await.unwrap(), obj);
    second.close().await;
}

#[tokio::test]
async fn postgres_reopen_keeps_data() {
    let db = TestDb::postgres().await;
    reopen_keeps_data(&db.url).await;
    db.drop_db().await;
}

#[tokio::test]
async fn sqlite_reopen_keeps_data() {
    let dir = tempfile::tempdir().unwrap();
    reopen_keeps_data(&format!(
        "sqlite://{}/nested/dir/s.db?mode=rwc",
        dir.path().display()
    ))
    .await;
}
