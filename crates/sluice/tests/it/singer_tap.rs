//! Singer taps as sources: fixture message streams (every message type and
//! every kind of bad input) through a scripted tap, and a real tap from PyPI.

use std::io::Write;

use crate::support::{Project, singer_bin};

/// A scripted tap: `--discover` prints `catalog.json`, a run prints
/// `messages.jsonl`, then `stderr.txt` on stderr, and exits with the code in
/// `exit-code`. It keeps the `--state` and `--catalog` it was given.
const FAKE_TAP: &str = r#"#!/bin/sh
dir=$(dirname "$0")
prev=
for a in "$@"; do
  case "$prev" in
    --state) cp "$a" "$dir/last-state.json" ;;
    --catalog) cp "$a" "$dir/last-catalog.json" ;;
    --config) config=$a ;;
  esac
  prev=$a
  case "$a" in
    --discover) cat "$dir/catalog.json"; exit 0 ;;
    --about) echo "no --about here" >&2; exit 2 ;;
  esac
done
cat "$dir/messages.jsonl"
[ -f "$dir/stderr.txt" ] && cat "$dir/stderr.txt" >&2
exit "$(cat "$dir/exit-code" 2>/dev/null || echo 0)"
"#;

const ORDERS_SCHEMA: &str = r#"{"type": "object", "properties": {"id": {"type": "integer"}, "amount": {"type": ["number", "null"]}, "updated": {"type": "string", "format": "date-time"}}}"#;
const USERS_SCHEMA: &str = r#"{"type": "object", "properties": {"id": {"type": "integer"}, "name": {"type": "string"}, "extra": {"type": "object"}}}"#;

fn catalog() -> String {
    format!(
        r#"{{"streams": [
  {{"tap_stream_id": "orders", "stream": "orders", "key_properties": ["id"], "schema": {ORDERS_SCHEMA},
    "metadata": [{{"breadcrumb": [], "metadata": {{"table-key-properties": ["id"], "valid-replication-keys": ["updated"]}}}}]}},
  {{"tap_stream_id": "users", "stream": "users", "key_properties": ["id"], "schema": {USERS_SCHEMA}, "metadata": []}}
]}}"#
    )
}

fn schema_line(stream: &str) -> String {
    let schema = if stream == "orders" {
        ORDERS_SCHEMA
    } else {
        USERS_SCHEMA
    };
    format!(
        r#"{{"type": "SCHEMA", "stream": "{stream}", "schema": {schema}, "key_properties": ["id"]}}"#
    )
}

fn order(id: u32, day: u32) -> String {
    format!(
        r#"{{"type": "RECORD", "stream": "orders", "record": {{"id": {id}, "amount": {id}.5, "updated": "2024-01-{day:02}T00:00:00Z"}}}}"#
    )
}

fn state(day: u32) -> String {
    format!(
        r#"{{"type": "STATE", "value": {{"bookmarks": {{"orders": {{"replication_key": "updated", "replication_key_value": "2024-01-{day:02}T00:00:00Z"}}}}}}}}"#
    )
}

fn fake_project(extra: &str) -> Project {
    let p = Project::new(&format!(
        "sources:\n  fake:\n    type: singer\n    plugin: fake-tap\n    executable: ./tap/fake-tap\n    config: {{token: abc}}\n{extra}"
    ));
    p.write("tap/fake-tap", FAKE_TAP);
    let script = p.path().join("tap/fake-tap");
    let mut perms = std::fs::metadata(&script).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&script, perms).unwrap();
    p.write("tap/catalog.json", catalog());
    p
}

fn messages(p: &Project, lines: &[String]) {
    p.write("tap/messages.jsonl", lines.join("\n") + "\n");
}

fn read(p: &Project, rel: &str) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(p.path().join(rel)).unwrap()).unwrap()
}

fn stored_state(p: &Project, stream: &str) -> serde_json::Value {
    let all = p.json(&["state", "show"]);
    all.as_array()
        .unwrap()
        .iter()
        .find(|s| s["stream_id"] == stream)
        .map(|s| s["value"]["singer_state"].clone())
        .unwrap_or(serde_json::Value::Null)
}

#[test]
fn tap_streams_land_typed_and_resume_from_the_committed_state() {
    let p = fake_project("");
    messages(
        &p,
        &[
            schema_line("orders"),
            schema_line("users"),
            order(1, 1),
            r#"{"type": "RECORD", "stream": "users", "record": {"id": 1, "name": "ann", "extra": {"vip": true}}}"#.into(),
            order(2, 2),
            state(2),
            r#"{"type": "METRIC", "value": {"type": "counter"}}"#.into(),
            r#"{"type": "RECORD", "stream": "users", "record": {"id": 2, "name": "bob"}, "time_extracted": "2024-01-02T00:00:00Z"}"#.into(),
        ],
    );
    let discovered = p.ok(&["discover", "fake"]);
    assert!(
        discovered.contains("INCREMENTAL on `updated`"),
        "{discovered}"
    );
    assert!(
        discovered.contains("object without `properties`"),
        "{discovered}"
    );

    let outcome = p.run_json(&[], "fake.orders");
    assert_eq!(outcome["status"], "success", "{outcome:#}");
    assert_eq!(outcome["write_mode"], "merge");
    assert_eq!(outcome["rows_written"], 2);
    assert_eq!(
        p.query("SELECT id, amount, CAST(updated AS VARCHAR) FROM fake.orders ORDER BY id"),
        vec![
            vec!["1", "1.5", "2024-01-01T00:00:00Z"],
            vec!["2", "2.5", "2024-01-02T00:00:00Z"]
        ]
    );
    assert_eq!(
        p.query("SELECT id, name, extra FROM fake.users ORDER BY id"),
        vec![
            vec!["1", "ann", r#""{""vip"": true}""#],
            vec!["2", "bob", ""]
        ]
    );
    // The config file handed to the tap is gone after the run (it holds secrets).
    assert_eq!(
        std::fs::read_dir(p.path().join(".sluice/tmp"))
            .unwrap()
            .count(),
        0
    );

    // The catalog the tap got: orders incremental on `updated`, both selected.
    p.ok(&["run"]);
    let cat = read(&p, "tap/last-catalog.json");
    let orders = &cat["streams"][0];
    assert_eq!(orders["replication_method"], "INCREMENTAL");
    assert_eq!(orders["replication_key"], "updated");
    let top = orders["metadata"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["breadcrumb"].as_array().unwrap().is_empty())
        .unwrap();
    assert_eq!(top["metadata"]["selected"], true);
    assert_eq!(top["metadata"]["replication-key"], "updated");
    // The state it got: the orders bookmark; users is a full-table stream
    // (overwrite) and starts over.
    assert_eq!(
        read(&p, "tap/last-state.json"),
        serde_json::json!({"bookmarks": {"orders": {"replication_key": "updated", "replication_key_value": "2024-01-02T00:00:00Z"}}})
    );
    assert_eq!(p.scalar("SELECT count(*) FROM fake.orders"), 2);
    assert_eq!(p.scalar("SELECT count(*) FROM fake.users"), 2);
}

#[test]
fn selection_and_columns_reach_the_catalog() {
    let p = fake_project(
        "    select: [orders]\n    streams:\n      orders: {columns: [amount], replication: full}\n",
    );
    messages(&p, &[schema_line("orders"), order(1, 1), state(1)]);
    p.ok(&["run"]);
    let cat = read(&p, "tap/last-catalog.json");
    let meta = |stream: usize, crumb: serde_json::Value| {
        cat["streams"][stream]["metadata"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["breadcrumb"] == crumb)
            .map(|m| m["metadata"].clone())
            .unwrap()
    };
    assert_eq!(
        meta(0, serde_json::json!([]))["replication-method"],
        "FULL_TABLE"
    );
    assert_eq!(
        meta(0, serde_json::json!(["properties", "amount"]))["selected"],
        true
    );
    // The key is always selected; other columns not asked for are not.
    assert_eq!(
        meta(0, serde_json::json!(["properties", "id"]))["selected"],
        true
    );
    assert_eq!(
        meta(0, serde_json::json!(["properties", "updated"]))["selected"],
        false
    );
    assert_eq!(meta(1, serde_json::json!([]))["selected"], false);
    let tables = p.ok(&["tables"]);
    assert!(!tables.contains("fake.users"), "{tables}");

    let p = fake_project("    streams:\n      orders: {columns: [nope]}\n");
    messages(&p, &[schema_line("orders"), order(1, 1), state(1)]);
    let err = p.fails(&["run"], 1);
    assert!(err.contains("`columns` names `nope`"), "{err}");
}

#[test]
fn activate_version_full_table_streams_are_replaced_each_run() {
    let p = fake_project("    select: [users]\n");
    let run = |names: &[&str], version: u32| {
        let mut lines = vec![
            schema_line("users"),
            format!(r#"{{"type": "ACTIVATE_VERSION", "stream": "users", "version": {version}}}"#),
        ];
        for (i, n) in names.iter().enumerate() {
            lines.push(format!(
                r#"{{"type": "RECORD", "stream": "users", "record": {{"id": {i}, "name": "{n}"}}, "version": {version}}}"#
            ));
        }
        lines.push(format!(
            r#"{{"type": "ACTIVATE_VERSION", "stream": "users", "version": {version}}}"#
        ));
        lines.push(r#"{"type": "STATE", "value": {"bookmarks": {}}}"#.into());
        messages(&p, &lines);
        p.run_json(&[], "fake.users")
    };
    assert_eq!(run(&["a", "b", "c"], 1)["write_mode"], "overwrite");
    run(&["d"], 2);
    assert_eq!(p.query("SELECT name FROM fake.users"), vec![vec!["d"]]);
}

#[test]
fn batch_messages_read_jsonl_gzip_and_parquet_files() {
    let p = fake_project("    select: [orders]\n");
    // A gzip JSON Lines file and a Parquet file, as the SDK's batch_config writes them.
    let gz = p.path().join("batches/part-1.jsonl.gz");
    std::fs::create_dir_all(gz.parent().unwrap()).unwrap();
    let mut enc = flate2::write::GzEncoder::new(
        std::fs::File::create(&gz).unwrap(),
        flate2::Compression::fast(),
    );
    for id in 10..13 {
        writeln!(
            enc,
            r#"{{"id": {id}, "amount": 1.25, "updated": "2024-02-01T00:00:00Z"}}"#
        )
        .unwrap();
    }
    enc.finish().unwrap();
    let pq = p.path().join("batches/part-2.parquet");
    write_parquet(&pq, &[20, 21]);
    messages(
        &p,
        &[
            schema_line("orders"),
            order(1, 1),
            format!(
                r#"{{"type": "BATCH", "stream": "orders", "encoding": {{"format": "jsonl", "compression": "gzip"}}, "manifest": ["file://{}"]}}"#,
                gz.display()
            ),
            format!(
                r#"{{"type": "BATCH", "stream": "orders", "encoding": {{"format": "parquet", "compression": "none"}}, "manifest": ["file://{}"]}}"#,
                pq.display()
            ),
            state(2),
        ],
    );
    let outcome = p.run_json(&[], "fake.orders");
    assert_eq!(outcome["status"], "success", "{outcome:#}");
    assert_eq!(
        p.query("SELECT id, amount FROM fake.orders ORDER BY id"),
        vec![
            vec!["1", "1.5"],
            vec!["10", "1.25"],
            vec!["11", "1.25"],
            vec!["12", "1.25"],
            vec!["20", "2.5"],
            vec!["21", "2.5"]
        ]
    );
    // A BATCH file with a bad line names the file and the line.
    let bad = p.path().join("batches/bad.jsonl");
    std::fs::write(&bad, "{\"id\": 30}\n{\"id\": \"x\"}\n").unwrap();
    messages(
        &p,
        &[
            schema_line("orders"),
            format!(
                r#"{{"type": "BATCH", "stream": "orders", "encoding": {{"format": "jsonl"}}, "manifest": ["{}"]}}"#,
                bad.display()
            ),
            state(3),
        ],
    );
    let err = p.fails(&["run"], 1);
    assert!(err.contains("bad.jsonl`, line 2"), "{err}");
}

fn write_parquet(path: &std::path::Path, ids: &[i64]) {
    use std::sync::Arc;

    use arrow::array::{Float64Array, Int64Array, RecordBatch};
    use arrow::datatypes::{DataType, Field, Schema};
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("amount", DataType::Float64, true),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from(ids.to_vec())),
            Arc::new(Float64Array::from(vec![2.5; ids.len()])),
        ],
    )
    .unwrap();
    let mut w =
        parquet::arrow::ArrowWriter::try_new(std::fs::File::create(path).unwrap(), schema, None)
            .unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}

/// Lines after the last STATE must not be committed, whatever goes wrong
/// after it. The lake commits at every checkpoint here, so what the first
/// STATE covers is committed before the failure. `bad` follows a record
/// after that STATE; when `then_more`, good lines and a STATE follow it.
fn fails_after_first_state_with(p: &Project, bad: &[String], then_more: bool) -> String {
    let mut lines = vec![
        schema_line("orders"),
        order(1, 1),
        order(2, 1),
        state(1),
        order(3, 2),
    ];
    lines.extend_from_slice(bad);
    if then_more {
        lines.push(order(4, 3));
        lines.push(state(3));
    }
    messages(p, &lines);
    let out = p
        .cmd(&["run"])
        .env("SLUICE_COMMIT_BYTES", "0")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(
        p.query("SELECT id FROM fake.orders ORDER BY id"),
        vec![vec!["1"], vec!["2"]],
        "only what the first STATE covers is committed"
    );
    assert_eq!(
        stored_state(p, "fake.orders")["bookmarks"]["orders"]["replication_key_value"],
        "2024-01-01T00:00:00Z"
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn fails_after_first_state(p: &Project, bad: &[String]) -> String {
    fails_after_first_state_with(p, bad, true)
}

#[test]
fn malformed_json_line_is_located_and_nothing_after_the_last_state_is_committed() {
    let p = fake_project("    select: [orders]\n");
    let err = fails_after_first_state(
        &p,
        &[r#"{"type": "RECORD", "stream": "orders", "record": {"id": 9"#.into()],
    );
    assert!(err.contains("line 6"), "{err}");
    assert!(err.contains("output of tap fake"), "{err}");
    assert!(err.contains("not closed"), "{err}");
    assert!(err.contains("hint:"), "{err}");
}

#[test]
fn record_before_its_schema_fails_that_stream_with_its_line() {
    let p = fake_project("");
    messages(
        &p,
        &[
            schema_line("orders"),
            order(1, 1),
            r#"{"type": "RECORD", "stream": "users", "record": {"id": 1, "name": "x"}}"#.into(),
            order(2, 2),
            state(2),
        ],
    );
    let err = p.fails(&["run"], 1);
    assert!(
        err.contains("stream `users`: a RECORD before the stream's SCHEMA"),
        "{err}"
    );
    assert!(err.contains("line 3"), "{err}");
    // The other stream of the same tap is not held back by it.
    assert_eq!(p.scalar("SELECT count(*) FROM fake.orders"), 2);
    assert!(!p.ok(&["tables"]).contains("fake.users"));
    assert_eq!(stored_state(&p, "fake.users"), serde_json::Value::Null);
}

#[test]
fn state_that_is_not_json_is_located() {
    let p = fake_project("    select: [orders]\n");
    let err = fails_after_first_state(
        &p,
        &[r#"{"type": "STATE", "value": {"bookmarks": oops}}"#.into()],
    );
    assert!(err.contains("line 6"), "{err}");
    assert!(err.contains("`value` is not valid"), "{err}");
}

#[test]
fn record_violating_its_schema_fails_located_or_is_quarantined() {
    let p = fake_project("    select: [orders]\n");
    let bad = r#"{"type": "RECORD", "stream": "orders", "record": {"id": "seven", "amount": 1}}"#;
    let err = fails_after_first_state(&p, &[bad.into()]);
    assert!(err.contains("line 6"), "{err}");
    assert!(err.contains("column `id`"), "{err}");
    assert!(err.contains("stream `orders`"), "{err}");

    let p = fake_project("    select: [orders]\n    on_error: quarantine\n");
    messages(
        &p,
        &[
            schema_line("orders"),
            order(1, 1),
            bad.into(),
            order(2, 2),
            state(2),
        ],
    );
    let outcome = p.run_json(&[], "fake.orders");
    assert_eq!(outcome["rows_written"], 2, "{outcome:#}");
    assert_eq!(outcome["rows_quarantined"], 1);
    assert_eq!(
        p.query("SELECT line, \"column\" FROM fake.orders__quarantine"),
        vec![vec!["3", "id"]]
    );
}

#[test]
fn tap_that_crashes_half_way_fails_with_its_exit_code_and_stderr() {
    let p = fake_project("    select: [orders]\n");
    p.write("tap/exit-code", "3");
    p.write(
        "tap/stderr.txt",
        "INFO starting\nERROR the API said 500\nTraceback: boom\n",
    );
    let err = fails_after_first_state_with(&p, &[], false);
    assert!(err.contains("tap fake failed with exit code 3"), "{err}");
    assert!(err.contains("the API said 500"), "{err}");
    assert!(err.contains("Traceback: boom"), "{err}");
    let log = std::fs::read_to_string(p.path().join(".sluice/logs/tap-fake.log")).unwrap();
    assert!(log.contains("INFO starting"), "{log}");
}

#[test]
fn plugin_secrets_are_redacted_from_its_log() {
    let p = Project::new(
        "sources:\n  fake:\n    type: singer\n    plugin: fake-tap\n    executable: ./tap/fake-tap\n    config: {token: \"${TAP_TOKEN}\"}\n    select: [orders]\n",
    );
    p.write(
        "tap/fake-tap",
        FAKE_TAP.replace(
            "cat \"$dir/messages.jsonl\"",
            "cat \"$dir/messages.jsonl\"; cat \"$config\" >&2",
        ),
    );
    let script = p.path().join("tap/fake-tap");
    let mut perms = std::fs::metadata(&script).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&script, perms).unwrap();
    p.write("tap/catalog.json", catalog());
    p.write(".env", "TAP_TOKEN=s3cr3t-value\n");
    messages(&p, &[schema_line("orders"), order(1, 1), state(1)]);
    p.ok(&["run"]);
    let log = std::fs::read_to_string(p.path().join(".sluice/logs/tap-fake.log")).unwrap();
    assert!(log.contains("token"), "the tap printed its config: {log}");
    assert!(!log.contains("s3cr3t-value"), "{log}");
}

#[test]
fn real_tap_csv_folder_loads_into_the_lake_and_resumes() {
    let tap = singer_bin("tap-csv-folder");
    let p = Project::new(&format!(
        "sources:\n  csvtap:\n    type: singer\n    plugin: tap-csv-folder\n    executable: {}\n    config: {{filesystem: local, path: data, read_mode: merge, stream_name: orders}}\n",
        tap.display()
    ));
    p.write("data/a.csv", "id,name,amount\n1,ann,1.5\n2,bob,2.5\n");
    p.write("data/b.csv", "id,name,amount\n3,cy,3.5\n");
    let outcome = p.run_json(&[], "csvtap.orders");
    assert_eq!(outcome["status"], "success", "{outcome:#}");
    assert_eq!(
        outcome["write_mode"], "merge",
        "keyed by the tap's key properties"
    );
    assert_eq!(
        p.query("SELECT id, name, _sdc_path FROM csvtap.orders ORDER BY id"),
        vec![
            vec!["1", "ann", "data/a.csv"],
            vec!["2", "bob", "data/a.csv"],
            vec!["3", "cy", "data/b.csv"]
        ]
    );
    let state = stored_state(&p, "csvtap.orders");
    assert!(
        state["bookmarks"]["orders"]["partitions"].is_array(),
        "{state:#}"
    );
    // A new row; the tap gets its state back and the merge keeps one row per key.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    p.write("data/b.csv", "id,name,amount\n3,cy,3.5\n4,dee,4.5\n");
    p.ok(&["run"]);
    assert_eq!(p.scalar("SELECT count(*) FROM csvtap.orders"), 4);
    assert_eq!(
        p.query("SELECT name FROM csvtap.orders WHERE id = '4'"),
        vec![vec!["dee"]]
    );
}

#[test]
fn messages_may_name_a_stream_by_its_catalog_stream_name() {
    // Classic taps (tap-postgres, tap-mysql): tap_stream_id `public-orders`,
    // messages say `orders`.
    let p = Project::new(
        "sources:\n  fake:\n    type: singer\n    plugin: fake-tap\n    executable: ./tap/fake-tap\n",
    );
    p.write("tap/fake-tap", FAKE_TAP);
    let script = p.path().join("tap/fake-tap");
    let mut perms = std::fs::metadata(&script).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&script, perms).unwrap();
    p.write(
        "tap/catalog.json",
        format!(
            r#"{{"streams": [{{"tap_stream_id": "public-orders", "stream": "orders", "key_properties": ["id"], "schema": {ORDERS_SCHEMA},
                "metadata": [{{"breadcrumb": [], "metadata": {{"table-key-properties": ["id"], "valid-replication-keys": ["updated"]}}}}]}}]}}"#
        ),
    );
    messages(
        &p,
        &[
            schema_line("orders"),
            order(1, 1),
            r#"{"type": "STATE", "value": {"bookmarks": {"public-orders": {"replication_key_value": "2024-01-01T00:00:00Z"}}}}"#.into(),
        ],
    );
    let outcome = p.run_json(&[], "fake.public_orders");
    assert_eq!(outcome["rows_written"], 1, "{outcome:#}");
    assert_eq!(p.scalar("SELECT count(*) FROM fake.public_orders"), 1);
}

#[test]
fn a_full_table_stream_the_tap_does_not_mention_keeps_its_table() {
    let p = fake_project("");
    messages(
        &p,
        &[
            schema_line("users"),
            r#"{"type": "RECORD", "stream": "users", "record": {"id": 1, "name": "ann"}}"#.into(),
            schema_line("orders"),
            order(1, 1),
            state(1),
        ],
    );
    p.ok(&["run"]);
    assert_eq!(p.scalar("SELECT count(*) FROM fake.users"), 1);
    // This time the tap says nothing of users (skipped, or it failed to list them).
    messages(
        &p,
        &[state(1), schema_line("orders"), order(2, 2), state(2)],
    );
    let outcome = p.run_json(&[], "fake.users");
    assert_eq!(outcome["status"], "success", "{outcome:#}");
    assert_eq!(
        p.scalar("SELECT count(*) FROM fake.users"),
        1,
        "not replaced by an empty table"
    );
    assert_eq!(p.scalar("SELECT count(*) FROM fake.orders"), 2);
}

#[test]
fn a_parquet_batch_value_that_does_not_fit_fails_instead_of_becoming_null() {
    use std::sync::Arc;

    use arrow::array::{RecordBatch, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    let p = fake_project("    select: [orders]\n");
    let pq = p.path().join("batches/bad.parquet");
    std::fs::create_dir_all(pq.parent().unwrap()).unwrap();
    let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Utf8, true)]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![Arc::new(StringArray::from(vec!["7", "seven"]))],
    )
    .unwrap();
    let mut w =
        parquet::arrow::ArrowWriter::try_new(std::fs::File::create(&pq).unwrap(), schema, None)
            .unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    messages(
        &p,
        &[
            schema_line("orders"),
            format!(
                r#"{{"type": "BATCH", "stream": "orders", "encoding": {{"format": "parquet"}}, "manifest": ["{}"]}}"#,
                pq.display()
            ),
            state(1),
        ],
    );
    let err = p.fails(&["run"], 1);
    assert!(err.contains("bad.parquet"), "{err}");
    assert!(err.contains("column `id`"), "{err}");
}

#[test]
fn a_streams_entry_that_names_no_stream_is_an_error_with_a_suggestion() {
    let p = fake_project("    streams:\n      order: {write_mode: append}\n");
    messages(&p, &[schema_line("orders"), order(1, 1), state(1)]);
    let err = p.fails(&["run"], 2);
    assert!(
        err.contains("`streams.order` names no stream of the tap"),
        "{err}"
    );
    assert!(err.contains("did you mean `orders`?"), "{err}");
}

#[test]
fn the_catalog_is_cached_between_runs_and_discover_refreshes_it() {
    let p = fake_project("");
    messages(&p, &[schema_line("orders"), order(1, 1), state(1)]);
    p.ok(&["run"]);
    // The tap gains a stream: runs keep the cached catalog ...
    let mut catalog: serde_json::Value = serde_json::from_str(&catalog()).unwrap();
    let mut extra = catalog["streams"][1].clone();
    extra["tap_stream_id"] = "teams".into();
    extra["stream"] = "teams".into();
    catalog["streams"].as_array_mut().unwrap().push(extra);
    p.write("tap/catalog.json", catalog.to_string());
    let runs = p.json(&["run"]);
    assert_eq!(runs["streams"].as_array().unwrap().len(), 2, "{runs:#}");
    // ... until `sluice discover` asks the tap again.
    assert!(p.ok(&["discover", "fake"]).contains("fake.teams"));
    let runs = p.json(&["run"]);
    assert_eq!(runs["streams"].as_array().unwrap().len(), 3, "{runs:#}");
}
