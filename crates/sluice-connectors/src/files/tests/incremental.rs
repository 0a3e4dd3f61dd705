//! State, checkpoints, changed files and the cursor across runs.

use serde_json::json;
use sluice_core::config::{OnError, Replication, StreamOptions};

use super::{bad_record, project, read, source, try_source, write};

/// Rewrite a file with new bytes and a later modification time.
fn touch(dir: &std::path::Path, rel: &str, bytes: &[u8]) {
    let path = write(dir, rel, bytes);
    let later = std::time::SystemTime::now() + std::time::Duration::from_secs(5);
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(later)
        .unwrap();
}

#[tokio::test]
async fn incremental_reads_only_new_and_changed_files() {
    let dir = project(&[("d/a.csv", b"id\n1\n2\n"), ("d/b.csv", b"id\n3\n")]);
    let src = source(dir.path(), json!({"path": "d/*.csv", "stream": "t"}));

    let first = read(&src, "t", None, OnError::Fail).await.unwrap();
    assert_eq!(first.column("id"), ["1", "2", "3"]);
    let state = first.state();
    assert_eq!(state["version"], 1);
    assert_eq!(state["files"]["d/a.csv"]["rows"], 2);
    assert_eq!(state["files"]["d/b.csv"]["rows"], 1);
    // Each checkpoint carries everything done so far.
    assert_eq!(
        first.checkpoints[0].state["files"]
            .as_object()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        first.checkpoints[1].state["files"]
            .as_object()
            .unwrap()
            .len(),
        2
    );

    let again = read(&src, "t", Some(state.clone()), OnError::Fail)
        .await
        .unwrap();
    assert!(again.schemas.is_empty() && again.batches.is_empty());
    assert_eq!(again.checkpoints.len(), 1);
    assert_eq!(
        again.checkpoints[0].position,
        "no new or changed files (2 unchanged)"
    );
    assert_eq!(again.state(), state);
    assert_eq!(again.progress.total_bytes, Some(0));

    touch(dir.path(), "d/b.csv", b"id\n3\n4\n");
    write(dir.path(), "d/c.csv", b"id\n5\n");
    let third = read(&src, "t", Some(state), OnError::Fail).await.unwrap();
    assert_eq!(third.column("id"), ["3", "4", "5"]);
    let state = third.state();
    assert_eq!(state["files"]["d/b.csv"]["rows"], 2);
    assert_eq!(state["files"].as_object().unwrap().len(), 3);
    // The first checkpoint keeps the entries of earlier runs.
    assert_eq!(third.checkpoints[0].state["files"]["d/a.csv"]["rows"], 2);

    std::fs::remove_file(dir.path().join("d/a.csv")).unwrap();
    let fourth = read(&src, "t", Some(state), OnError::Fail).await.unwrap();
    assert_eq!(fourth.rows(), 0);
    let files = fourth.state()["files"].as_object().unwrap().clone();
    assert_eq!(files.keys().collect::<Vec<_>>(), ["d/b.csv", "d/c.csv"]);
}

#[tokio::test]
async fn full_replication_reads_every_file_every_time() {
    let dir = project(&[("a.csv", b"id\n1\n")]);
    let src = source(dir.path(), json!({"path": "a.csv", "replication": "full"}));
    let first = read(&src, "a", None, OnError::Fail).await.unwrap();
    let second = read(&src, "a", Some(first.state()), OnError::Fail)
        .await
        .unwrap();
    assert_eq!(second.rows(), 1);

    // A project-wide default applies under the source's own keys.
    let src = source(dir.path(), json!({"path": "a.csv"}))
        .with_defaults(&StreamOptions {
            replication: Some(Replication::Full),
            ..Default::default()
        })
        .unwrap();
    let second = read(&src, "a", Some(first.state()), OnError::Fail)
        .await
        .unwrap();
    assert_eq!(second.rows(), 1);
}

#[tokio::test]
async fn cursor_skips_old_rows_and_dedupes_at_the_bookmark() {
    let dir = project(&[(
        "d/1.csv",
        b"id,updated_at\n1,2024-01-01T00:00:00Z\n2,2024-01-03T00:00:00Z\n3,2024-01-02T00:00:00Z\n",
    )]);
    let src = source(
        dir.path(),
        json!({"path": "d/*.csv", "stream": "t", "cursor": "updated_at"}),
    );
    let first = read(&src, "t", None, OnError::Fail).await.unwrap();
    assert_eq!(first.rows(), 3);
    let cursor = &first.state()["cursor"];
    assert_eq!(cursor["column"], "updated_at");
    assert_eq!(cursor["value"], "2024-01-03T00:00:00Z");
    assert_eq!(cursor["type"], "Timestamp(µs, \"UTC\")");
    assert_eq!(cursor["at_value"].as_array().unwrap().len(), 1);
    assert!(cursor.get("in_progress").is_none());

    // A new file: older rows, the row already loaded at the bookmark, a new
    // row at the bookmark, and newer rows.
    write(
        dir.path(),
        "d/2.csv",
        b"id,updated_at\n0,2023-12-31T00:00:00Z\n2,2024-01-03T00:00:00Z\n4,2024-01-03T00:00:00Z\n5,2024-01-04T00:00:00Z\n",
    );
    let second = read(&src, "t", Some(first.state()), OnError::Fail)
        .await
        .unwrap();
    assert_eq!(second.column("id"), ["4", "5"]);
    assert_eq!(second.progress.rows_skipped, 2);
    assert_eq!(second.state()["cursor"]["value"], "2024-01-04T00:00:00Z");
    assert_eq!(second.state()["files"]["d/2.csv"]["rows"], 2);

    // Unchanged files are skipped even with a cursor.
    let third = read(&src, "t", Some(second.state()), OnError::Fail)
        .await
        .unwrap();
    assert_eq!(third.rows(), 0);
    assert_eq!(third.progress.rows_skipped, 0);
}

#[tokio::test]
async fn mid_run_checkpoints_keep_filtering_by_the_starting_bookmark() {
    let dir = project(&[("d/1.csv", b"id,v\n1,10\n")]);
    let src = source(
        dir.path(),
        json!({"path": "d/*.csv", "stream": "t", "cursor": "v"}),
    );
    let first = read(&src, "t", None, OnError::Fail).await.unwrap();
    write(dir.path(), "d/2.csv", b"id,v\n2,30\n");
    write(dir.path(), "d/3.csv", b"id,v\n3,20\n");
    let second = read(&src, "t", Some(first.state()), OnError::Fail)
        .await
        .unwrap();
    assert_eq!(second.column("id"), ["2", "3"]);
    let mid = &second.checkpoints[0].state;
    assert_eq!(mid["cursor"]["value"], "10");
    assert_eq!(mid["cursor"]["in_progress"]["value"], "30");
    assert_eq!(second.state()["cursor"]["value"], "30");

    // A run stopped after `d/2.csv` resumes from the mid-run checkpoint:
    // `d/3.csv` (v = 20) still loads, as in an uninterrupted run.
    let resumed = read(&src, "t", Some(mid.clone()), OnError::Fail)
        .await
        .unwrap();
    assert_eq!(resumed.column("id"), ["3"]);
    assert_eq!(resumed.state()["cursor"]["value"], "30");
    assert!(resumed.state()["cursor"].get("in_progress").is_none());
}

#[tokio::test]
async fn a_null_cursor_is_a_bad_record() {
    let dir = project(&[("a.csv", b"id,v\n1,10\n2,\n3,30\n")]);
    let src = source(dir.path(), json!({"path": "a.csv", "cursor": "v"}));
    let (location, message) = bad_record(read(&src, "a", None, OnError::Fail).await);
    assert_eq!(
        (location.line, location.column.as_deref()),
        (Some(3), Some("v"))
    );
    assert_eq!(message, "the cursor column `v` is NULL");
    let run = read(&src, "a", None, OnError::Quarantine).await.unwrap();
    assert_eq!(run.column("id"), ["1", "3"]);
    let q = run.quarantine();
    assert_eq!(q[0].record.as_deref(), Some(r#"{"id":"2","v":""}"#));
}

#[tokio::test]
async fn the_cursor_must_exist_and_have_an_order() {
    let dir = project(&[("a.csv", b"id,flag\n1,true\n")]);
    let src = source(dir.path(), json!({"path": "a.csv", "cursor": "flag"}));
    let err = read(&src, "a", None, OnError::Fail).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "The cursor column `flag` has type bool, which has no order"
    );
    let err = try_source(
        dir.path(),
        json!({"path": "a.csv", "cursor": "flag", "columns": {"flag": "bool"}}),
    )
    .unwrap_err();
    assert!(err.to_string().contains("`flag` has type bool"), "{err}");
    let src = source(dir.path(), json!({"path": "a.csv", "cursor": "ids"}));
    let err = read(&src, "a", None, OnError::Fail).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "The cursor column `ids` is not in `a.csv` (did you mean `id`?)"
    );
}

#[tokio::test]
async fn a_foreign_state_is_refused_with_a_hint() {
    let dir = project(&[("a.csv", b"id\n1\n")]);
    let src = source(dir.path(), json!({"path": "a.csv"}));
    let err = read(&src, "a", Some(json!({"files": 3})), OnError::Fail)
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("The state of stream `a` is not a `files` state"),
        "{err}"
    );
    let src = source(dir.path(), json!({"path": "a.csv", "cursor": "id"}));
    let state = json!({"files": {}, "cursor": {"column": "other", "type": "Int64", "value": "1"}});
    let err = read(&src, "a", Some(state), OnError::Fail)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("bookmark is on column `other`"),
        "{err}"
    );
}
