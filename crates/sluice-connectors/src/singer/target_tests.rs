//! The Singer target destination against small targets written in `sh`
//! (real processes, real pipes): the contract check, echo handling, exits,
//! ACTIVATE_VERSION, schema changes. The CLI tests run real PyPI targets.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use serde_json::{Value, json};
use sluice_core::TableName;
use sluice_core::config::{OnError, WriteMode};
use sluice_core::connector::{Checkpoint, Destination, Unconfirmed, WriteRequest};

use super::SingerTarget;
use crate::singer::process::Plugin;

/// A Singer target in `sh`. Records of each stream wait in
/// `pending.<stream>` and are appended to `out.<stream>` at the next STATE,
/// like a target that writes in batches; every input line is also kept in
/// `input.jsonl`. `ECHO=all|last|none` says which STATE values it prints,
/// `FAIL_AFTER=n` makes it die at its n-th record.
const SH_TARGET: &str = r#"#!/bin/sh
if [ "$1" = "--about" ]; then
  echo '{"name": "target-sh", "version": "1.0", "capabilities": ["about"]}'
  exit 0
fi
dir=$(dirname "$0")
n=0
last=""
while IFS= read -r line; do
  printf '%s\n' "$line" >> "$dir/input.jsonl"
  case "$line" in
    '{"type":"RECORD"'*)
      n=$((n+1))
      if [ -n "$FAIL_AFTER" ] && [ "$n" -ge "$FAIL_AFTER" ]; then
        echo "loading record $n" >&2
        echo "ERROR: disk full" >&2
        exit 3
      fi
      s=${line#*'"stream":"'}; s=${s%%'"'*}
      printf '%s\n' "$line" >> "$dir/pending.$s" ;;
    '{"type":"STATE"'*)
      for f in "$dir"/pending.*; do
        [ -e "$f" ] || continue
        cat "$f" >> "$dir/out.${f##*/pending.}"
        rm "$f"
      done
      v=${line#'{"type":"STATE","value":'}
      v=${v%?}
      case "$ECHO" in
        none) ;;
        last) last="$v" ;;
        *) printf '%s\n' "$v" ;;
      esac ;;
  esac
done
if [ "$ECHO" = last ] && [ -n "$last" ]; then printf '%s\n' "$last"; fi
"#;

fn sh_target(dir: &Path, env: &[(&str, &str)]) -> SingerTarget {
    let program = dir.join("target-sh");
    std::fs::write(&program, SH_TARGET).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let plugin = Plugin {
        label: "target sh".into(),
        program,
        dir: dir.to_path_buf(),
        env: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        redact: Arc::new(|s: &str| s.to_string()),
    };
    SingerTarget::new("sh", plugin, Some(json!({"path": "anywhere"})))
}

fn request(mode: WriteMode) -> WriteRequest {
    WriteRequest {
        table: TableName::new("shop", "orders"),
        mode,
        primary_key: vec!["id".into()],
        full_refresh: false,
        run_id: "r1".into(),
        stream_id: "shop.orders".into(),
        evolution: Default::default(),
        on_error: OnError::Fail,
    }
}

fn batch(ids: &[i64]) -> RecordBatch {
    let names: Vec<String> = ids.iter().map(|i| format!("n{i}")).collect();
    RecordBatch::try_from_iter(vec![
        ("id", Arc::new(Int64Array::from(ids.to_vec())) as ArrayRef),
        ("name", Arc::new(StringArray::from(names)) as ArrayRef),
    ])
    .unwrap()
}

fn cp(n: u64) -> Checkpoint {
    Checkpoint {
        state: json!({"file": format!("f{n}.csv")}),
        position: format!("f{n}.csv"),
    }
}

fn lines(path: PathBuf) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test]
async fn passes_the_destination_conformance_check() {
    use crate::conformance::destination::{DestinationCheck, check_destination};
    let dir = tempfile::tempdir().unwrap();
    let dest = sh_target(dir.path(), &[]);
    let root = dir.path().to_path_buf();
    let count = |t: TableName| {
        let out = root.join(format!("out.{}", t.name));
        async move { lines(out).len() as u64 }
    };
    check_destination(
        &dest,
        DestinationCheck {
            table: TableName::new("conformance", "t"),
            tracks_state: false,
            count_rows: &count,
        },
    )
    .await
    .unwrap();
    // The quarantined row went to the same target as `t__quarantine`.
    let q = lines(dir.path().join("out.t__quarantine"));
    assert_eq!(q.len(), 1);
    assert_eq!(q[0]["record"]["reason"], "conformance");
    assert_eq!(q[0]["record"]["stream"], "conformance.t");
    // The config file passed to the target is gone after the run.
    let tmp = dir.path().join(".sluice/tmp");
    assert_eq!(std::fs::read_dir(tmp).unwrap().count(), 0);
}

#[tokio::test]
async fn commits_follow_the_echoed_states_and_count_rows_between_them() {
    let dir = tempfile::tempdir().unwrap();
    let dest = sh_target(dir.path(), &[]);
    let mut w = dest.open(request(WriteMode::Append)).await.unwrap();
    w.write(RecordBatch::new_empty(batch(&[]).schema()))
        .await
        .unwrap();
    w.write(batch(&[1, 2])).await.unwrap();
    let mut commits = Vec::new();
    commits.extend(w.checkpoint(7, &cp(1)).await.unwrap());
    w.write(batch(&[3])).await.unwrap();
    commits.extend(w.checkpoint(8, &cp(2)).await.unwrap());
    w.write(batch(&[4, 5, 6])).await.unwrap();
    commits.extend(w.checkpoint(9, &cp(3)).await.unwrap());
    commits.extend(w.finish().await.unwrap());
    assert_eq!(w.unconfirmed(), Unconfirmed::default());
    let last = commits.last().unwrap();
    assert_eq!(last.seq, 9);
    assert_eq!(last.checkpoint, cp(3));
    assert_eq!(commits.iter().map(|c| c.rows).sum::<u64>(), 6);
    // Each commit counts exactly the rows sent between the STATE it covers
    // and the previous commit's (the target may echo late; commits coalesce).
    for c in &commits {
        let upto: u64 = commits
            .iter()
            .filter(|o| o.seq <= c.seq)
            .map(|o| o.rows)
            .sum();
        let sent_before = match c.seq {
            7 => 2,
            8 => 3,
            _ => 6,
        };
        assert_eq!(upto, sent_before, "{c:?}");
    }
    // What the target received: one SCHEMA, records with the stream name, STATEs.
    let input = lines(dir.path().join("input.jsonl"));
    assert_eq!(
        input[0],
        json!({"type": "SCHEMA", "stream": "orders", "schema": {"type": "object", "properties": {
            "id": {"type": ["integer", "null"]}, "name": {"type": ["string", "null"]}}},
            "key_properties": ["id"]})
    );
    assert_eq!(input.iter().filter(|m| m["type"] == "SCHEMA").count(), 1);
    assert_eq!(
        input[1],
        json!({"type": "RECORD", "stream": "orders", "record": {"id": 1, "name": "n1"}})
    );
    assert_eq!(
        input[3],
        json!({"type": "STATE", "value": {"bookmarks": {"orders": {"file": "f1.csv"}},
            "sluice": {"seq": 7, "stream": "shop.orders"}}})
    );
    assert_eq!(lines(dir.path().join("out.orders")).len(), 6);
}

#[tokio::test]
async fn a_target_that_echoes_only_its_last_state_commits_everything_at_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let dest = sh_target(dir.path(), &[("ECHO", "last")]);
    let mut w = dest.open(request(WriteMode::Append)).await.unwrap();
    w.write(batch(&[1, 2])).await.unwrap();
    assert_eq!(w.checkpoint(1, &cp(1)).await.unwrap(), None);
    w.write(batch(&[3])).await.unwrap();
    assert_eq!(w.checkpoint(2, &cp(2)).await.unwrap(), None);
    let c = w.finish().await.unwrap().unwrap();
    assert_eq!((c.seq, c.rows), (2, 3));
    assert_eq!(c.checkpoint, cp(2));
}

#[tokio::test]
async fn a_target_that_echoes_nothing_commits_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let dest = sh_target(dir.path(), &[("ECHO", "none")]);
    let mut w = dest.open(request(WriteMode::Append)).await.unwrap();
    w.write(batch(&[1, 2])).await.unwrap();
    assert_eq!(w.checkpoint(1, &cp(1)).await.unwrap(), None);
    assert_eq!(w.finish().await.unwrap(), None);
    assert_eq!(
        w.unconfirmed(),
        Unconfirmed {
            rows: 2,
            quarantined: 0
        }
    );
    // Nothing confirmed: no schema is remembered for the table either.
    let t = TableName::new("shop", "orders");
    assert_eq!(dest.table_schema(&t).await.unwrap(), None);
}

#[tokio::test]
async fn a_target_that_dies_fails_with_its_exit_code_and_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let dest = sh_target(dir.path(), &[("FAIL_AFTER", "3")]);
    let mut w = dest.open(request(WriteMode::Append)).await.unwrap();
    w.write(batch(&[1, 2])).await.unwrap();
    let first = w.checkpoint(1, &cp(1)).await.unwrap();
    let mut result = Ok(None);
    // Its death shows on the write that finds the pipe closed, or at the end.
    for i in 0..2000 {
        if let Err(e) = w.write(batch(&[10 + i])).await {
            result = Err(e);
            break;
        }
    }
    if result.is_ok() {
        result = w.finish().await;
    }
    let err = result.unwrap_err().to_string();
    assert!(
        err.contains("target sh/orders failed with exit code 3"),
        "{err}"
    );
    assert!(err.contains("ERROR: disk full"), "{err}");
    assert!(err.contains("loading record 3"), "{err}");
    // Only the STATE echoed before the failure was committed.
    if let Some(c) = first {
        assert_eq!((c.seq, c.rows), (1, 2));
    }
    w.abort().await;
    // The stderr went to the plugin's log.
    let log =
        std::fs::read_to_string(dir.path().join(".sluice/logs/target-sh-orders.log")).unwrap();
    assert!(log.contains("ERROR: disk full"), "{log}");
}

#[tokio::test]
async fn overwrite_activates_the_version_after_the_last_record_and_states_at_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let dest = sh_target(dir.path(), &[]);
    let mut w = dest.open(request(WriteMode::Overwrite)).await.unwrap();
    w.write(batch(&[1])).await.unwrap();
    assert_eq!(w.checkpoint(1, &cp(1)).await.unwrap(), None);
    w.write(batch(&[2])).await.unwrap();
    assert_eq!(w.checkpoint(2, &cp(2)).await.unwrap(), None);
    let c = w.finish().await.unwrap().unwrap();
    assert_eq!((c.seq, c.rows), (2, 2));
    // A table Sluice never loaded (no `_schema.json`, as on every fresh
    // checkout): still no ACTIVATE_VERSION before the records, or an SDK
    // SQL target would empty the table before the new rows arrive.
    let input = lines(dir.path().join("input.jsonl"));
    let kinds: Vec<&str> = input.iter().map(|m| m["type"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        ["SCHEMA", "RECORD", "RECORD", "ACTIVATE_VERSION", "STATE"]
    );
    let version = input[3]["version"].as_i64().unwrap();
    let now = chrono::Utc::now().timestamp();
    assert!(
        (now - 60..=now).contains(&version),
        "epoch seconds: {version}"
    );
    assert_eq!(input[1]["version"], version);
    assert_eq!(input[2]["version"], version);

    // Replacing a table the target already has: the same.
    std::fs::remove_file(dir.path().join("input.jsonl")).unwrap();
    let mut w = dest.open(request(WriteMode::Overwrite)).await.unwrap();
    w.write(batch(&[3])).await.unwrap();
    w.checkpoint(3, &cp(3)).await.unwrap();
    w.finish().await.unwrap().unwrap();
    let input = lines(dir.path().join("input.jsonl"));
    let kinds: Vec<&str> = input.iter().map(|m| m["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["SCHEMA", "RECORD", "ACTIVATE_VERSION", "STATE"]);
}

#[tokio::test]
async fn overwrite_that_fails_half_way_sends_no_activate_version() {
    let dir = tempfile::tempdir().unwrap();
    let dest = sh_target(dir.path(), &[]);
    let mut w = dest.open(request(WriteMode::Overwrite)).await.unwrap();
    // More than the 1 MiB pipe buffer, so the target reads rows before the
    // run fails.
    let ids: Vec<i64> = (0..20_000).collect();
    w.write(batch(&ids)).await.unwrap();
    assert_eq!(w.checkpoint(1, &cp(1)).await.unwrap(), None);
    w.abort().await;
    let input = std::fs::read_to_string(dir.path().join("input.jsonl")).unwrap();
    let kinds: Vec<&str> = input
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .map(|m| {
            if m["type"] == "RECORD" {
                "RECORD"
            } else {
                "other"
            }
        })
        .collect();
    assert!(kinds.len() > 1000, "the target read rows: {}", kinds.len());
    assert_eq!(kinds[0], "other", "the SCHEMA first");
    assert!(
        kinds[1..].iter().all(|k| *k == "RECORD"),
        "nothing but records after the SCHEMA (no ACTIVATE_VERSION, no STATE): {:?}",
        input.lines().skip(1).find(|l| !l.contains("\"RECORD\""))
    );
}

#[tokio::test]
async fn schema_changes_send_a_new_schema_and_unsafe_ones_are_refused_next_run() {
    let dir = tempfile::tempdir().unwrap();
    let dest = sh_target(dir.path(), &[]);
    let mut w = dest.open(request(WriteMode::Append)).await.unwrap();
    w.write(batch(&[1])).await.unwrap();
    let wider = RecordBatch::try_from_iter(vec![
        ("id", Arc::new(Int64Array::from(vec![2])) as ArrayRef),
        ("name", Arc::new(StringArray::from(vec!["b"])) as ArrayRef),
        ("price", Arc::new(Float64Array::from(vec![1.5])) as ArrayRef),
    ])
    .unwrap();
    w.write(wider).await.unwrap();
    w.checkpoint(1, &cp(1)).await.unwrap();
    let c = w.finish().await.unwrap().unwrap();
    assert_eq!(c.changes.len(), 1, "{:?}", c.changes);
    let input = lines(dir.path().join("input.jsonl"));
    let schemas: Vec<&Value> = input.iter().filter(|m| m["type"] == "SCHEMA").collect();
    assert_eq!(schemas.len(), 2);
    assert_eq!(
        schemas[1]["schema"]["properties"]["price"],
        json!({"type": ["number", "null"]})
    );
    // The confirmed schema is remembered: a later run may not turn `id` into text.
    let t = TableName::new("shop", "orders");
    let known = dest.table_schema(&t).await.unwrap().unwrap();
    assert!(known.field_with_name("price").is_ok());
    let mut w = dest.open(request(WriteMode::Append)).await.unwrap();
    let text_ids = RecordBatch::try_from_iter(vec![(
        "id",
        Arc::new(StringArray::from(vec!["x"])) as ArrayRef,
    )])
    .unwrap();
    let err = w.write(text_ids).await.unwrap_err();
    assert!(
        matches!(
            err,
            sluice_core::connector::ConnectorError::SchemaRefused { .. }
        ),
        "{err}"
    );
    w.abort().await;
}

#[tokio::test]
async fn check_reports_what_the_target_says_about_itself() {
    let dir = tempfile::tempdir().unwrap();
    let dest = sh_target(dir.path(), &[]);
    let about = dest.check().await.unwrap();
    assert_eq!(about, "target-sh 1.0; capabilities: about");
    let missing = SingerTarget::new(
        "gone",
        Plugin {
            label: "target gone".into(),
            program: dir.path().join("target-gone"),
            dir: dir.path().to_path_buf(),
            env: Vec::new(),
            redact: Arc::new(|s: &str| s.to_string()),
        },
        None,
    );
    let err = missing.check().await.unwrap_err();
    assert!(err.to_string().contains("target-gone"), "{err}");
    assert!(
        sluice_core::error::Classify::hint(&err)
            .unwrap()
            .contains("sluice plugin add target-gone"),
        "{err:?}"
    );
    assert_eq!(
        dest.describe(&TableName::new("shop", "orders")),
        "target-sh stream `orders`"
    );
}
