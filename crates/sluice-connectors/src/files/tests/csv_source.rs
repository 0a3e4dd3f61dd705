//! CSV through the whole `Source`: schema, values, located errors, quarantine.

use arrow::datatypes::{DataType, TimeUnit};
use serde_json::json;
use sluice_core::config::OnError;
use sluice_core::connector::{ConnectorError, Message, Source};

use super::{bad_record, fixture, project, read, read_batched, source, try_source};

fn utc() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

fn types(run: &super::Run) -> Vec<DataType> {
    run.schemas
        .last()
        .unwrap()
        .fields()
        .iter()
        .map(|f| f.data_type().clone())
        .collect()
}

#[tokio::test]
async fn reads_typed_rows_with_progress_and_a_checkpoint() {
    let csv = b"id,customer,at,paid,amount,day,note\n\
        1,7,2024-01-01T10:00:00Z,true,10.5,2024-01-01,\n\
        2,8,2024-01-02T11:30:00.25Z,false,3,2024-01-02,\"with, comma\"\n";
    let dir = project(&[("data/orders.csv", csv)]);
    let src = source(dir.path(), json!({"path": "data/orders.csv"}));
    assert_eq!(src.stream_names(), ["orders"]);
    let run = read(&src, "orders", None, OnError::Fail).await.unwrap();
    assert_eq!(
        types(&run),
        [
            DataType::Int64,
            DataType::Int64,
            utc(),
            DataType::Boolean,
            DataType::Float64,
            DataType::Date32,
            DataType::Utf8
        ]
    );
    assert_eq!(
        run.column("at"),
        ["2024-01-01T10:00:00Z", "2024-01-02T11:30:00.250Z"]
    );
    assert_eq!(run.column("note"), ["NULL", "with, comma"]);
    assert_eq!(run.progress.bytes, csv.len() as u64);
    assert_eq!(run.progress.total_bytes, Some(csv.len() as u64));
    assert_eq!(run.progress.files, 1);
    assert_eq!(run.checkpoints.len(), 1);
    assert_eq!(run.checkpoints[0].position, "data/orders.csv (2 rows)");
    let state = run.state();
    assert_eq!(state["files"]["data/orders.csv"]["rows"], 2);
    assert_eq!(state["files"]["data/orders.csv"]["size"], csv.len());
    assert!(
        state["files"]["data/orders.csv"]["mtime_ns"]
            .as_i64()
            .unwrap()
            > 0
    );
    // Order: Schema, then batches, the checkpoint last.
    assert!(matches!(
        run.messages
            .iter()
            .find(|m| !matches!(m, Message::Progress(_))),
        Some(Message::Schema(_))
    ));
    assert!(matches!(run.messages.last(), Some(Message::Checkpoint(_))));
}

#[tokio::test]
async fn batches_follow_the_batch_size() {
    let mut csv = b"id\n".to_vec();
    for i in 0..2_500 {
        csv.extend_from_slice(format!("{i}\n").as_bytes());
    }
    let dir = project(&[("n.csv", &csv)]);
    let src = source(dir.path(), json!({"path": "n.csv"}));
    let run = read_batched(&src, "n", None, OnError::Fail, 1000)
        .await
        .unwrap();
    let sizes: Vec<usize> = run.batches.iter().map(|b| b.num_rows()).collect();
    assert_eq!(sizes, [1000, 1000, 500]);
}

#[tokio::test]
async fn wrong_field_counts_fail_or_go_to_quarantine() {
    let dir = project(&[(
        "data/wrong_field_count.csv",
        &fixture("wrong_field_count.csv"),
    )]);
    let src = source(dir.path(), json!({"path": "data/wrong_field_count.csv"}));
    let (location, message) =
        bad_record(read(&src, "wrong_field_count", None, OnError::Fail).await);
    assert_eq!(location.file.as_deref(), Some("data/wrong_field_count.csv"));
    assert_eq!(location.line, Some(3));
    assert_eq!(message, "expected 3 fields, found 2");

    let run = read(&src, "wrong_field_count", None, OnError::Quarantine)
        .await
        .unwrap();
    assert_eq!(run.column("id"), ["1", "4"]);
    let q = run.quarantine();
    assert_eq!(
        q.iter().map(|r| r.line).collect::<Vec<_>>(),
        [Some(3), Some(4)]
    );
    assert_eq!(q[1].reason, "expected 3 fields, found 4");
    assert_eq!(q[1].file.as_deref(), Some("data/wrong_field_count.csv"));
    assert_eq!(
        q[1].record.as_deref(),
        Some(r#"{"id":"3","name":"carol","amount":"30","column_4":"extra"}"#)
    );
    assert_eq!(
        run.state()["files"]["data/wrong_field_count.csv"]["rows"],
        2
    );
}

#[tokio::test]
async fn bad_numbers_and_dates_are_located() {
    let dir = project(&[("bad.csv", &fixture("bad_numbers_and_dates.csv"))]);
    let src = source(dir.path(), json!({"path": "bad.csv", "infer_rows": 2}));
    let (location, message) = bad_record(read(&src, "bad", None, OnError::Fail).await);
    assert_eq!(
        (
            location.line,
            location.column.as_deref(),
            location.value.as_deref()
        ),
        (Some(4), Some("amount"), Some("abc"))
    );
    assert_eq!(message, "expected float64 (inferred from the first 2 rows)");
    let text = ConnectorError::BadRecord {
        location,
        message,
        hint: None,
    }
    .to_string();
    assert_eq!(
        text,
        "`bad.csv`, line 4, column `amount` (value `abc`): expected float64 (inferred from the first 2 rows)"
    );

    let run = read(&src, "bad", None, OnError::Quarantine).await.unwrap();
    assert_eq!(run.column("id"), ["1", "2", "5"]);
    let q = run.quarantine();
    assert_eq!(q.len(), 2);
    assert_eq!(
        (q[1].line, q[1].column.as_deref(), q[1].value.as_deref()),
        (Some(5), Some("day"), Some("2024-13-01"))
    );
    assert_eq!(
        q[1].reason,
        "expected date (inferred from the first 2 rows)"
    );
    assert_eq!(
        q[0].record.as_deref(),
        Some(r#"{"id":"3","amount":"abc","day":"2024-01-03"}"#)
    );
}

#[tokio::test]
async fn invalid_utf8_is_located() {
    let dir = project(&[("u.csv", &fixture("invalid_utf8.csv"))]);
    let src = source(dir.path(), json!({"path": "u.csv"}));
    let (location, message) = bad_record(read(&src, "u", None, OnError::Fail).await);
    assert_eq!(
        (location.line, location.column.as_deref()),
        (Some(3), Some("name"))
    );
    assert_eq!(location.value.as_deref(), Some("b\u{FFFD}d"));
    assert!(message.contains("invalid UTF-8"), "{message}");
    let run = read(&src, "u", None, OnError::Quarantine).await.unwrap();
    assert_eq!(run.column("name"), ["ok", "fine"]);
    assert_eq!(run.quarantine()[0].line, Some(3));
}

#[tokio::test]
async fn an_unterminated_quote_fails_at_the_line_it_opened() {
    let dir = project(&[("q.csv", &fixture("broken_quoting.csv"))]);
    let src = source(dir.path(), json!({"path": "q.csv"}));
    let (location, message) = bad_record(read(&src, "q", None, OnError::Fail).await);
    assert_eq!(
        (location.line, location.column.as_deref()),
        (Some(3), Some("name"))
    );
    assert!(
        message.starts_with("unterminated quoted field"),
        "{message}"
    );
    let run = read(&src, "q", None, OnError::Quarantine).await.unwrap();
    assert_eq!(run.column("id"), ["1"]);
    assert_eq!(
        run.quarantine()[0].value.as_deref(),
        Some("bob,20\n3,carol,30\n")
    );
}

#[tokio::test]
async fn lines_after_quoted_newlines_are_right() {
    let dir = project(&[("q.csv", &fixture("quoted_newlines.csv"))]);
    let src = source(
        dir.path(),
        json!({"path": "q.csv", "columns": {"amount": "int64"}}),
    );
    let (location, message) = bad_record(read(&src, "q", None, OnError::Fail).await);
    assert_eq!(
        (location.line, location.value.as_deref()),
        (Some(8), Some("x"))
    );
    assert_eq!(message, "expected int64 (declared in `columns:`)");
}

#[tokio::test]
async fn empty_and_header_only_files() {
    let dir = project(&[
        ("e/empty.csv", b""),
        ("h/header_only.csv", &fixture("header_only.csv")),
    ]);
    let src = source(dir.path(), json!({"path": "e/*.csv", "stream": "empty"}));
    let run = read(&src, "empty", None, OnError::Fail).await.unwrap();
    assert!(run.schemas.is_empty() && run.batches.is_empty());
    assert_eq!(run.checkpoints.len(), 1);
    assert_eq!(run.state()["files"]["e/empty.csv"]["rows"], 0);

    let src = source(dir.path(), json!({"path": "h/header_only.csv"}));
    let run = read(&src, "header_only", None, OnError::Fail)
        .await
        .unwrap();
    assert_eq!(run.schemas.len(), 1);
    let names: Vec<&str> = run.schemas[0]
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect();
    assert_eq!(names, ["id", "name", "amount"]);
    assert_eq!(
        types(&run),
        [DataType::Utf8, DataType::Utf8, DataType::Utf8]
    );
    assert_eq!(run.rows(), 0);
    assert_eq!(run.checkpoints.len(), 1);
}

#[tokio::test]
async fn dialects_crlf_bom_tsv_and_no_header() {
    let dir = project(&[
        ("crlf.csv", &fixture("crlf.csv")),
        ("bom.csv", &fixture("bom.csv")),
        ("tabs.tsv", &fixture("tabs.tsv")),
        ("no_header.csv", &fixture("no_header.csv")),
    ]);
    let run = read(
        &source(dir.path(), json!({"path": "crlf.csv"})),
        "crlf",
        None,
        OnError::Fail,
    )
    .await
    .unwrap();
    assert_eq!(
        run.column("note"),
        ["two\r\nlines", "plain", "a \"quoted\", word"]
    );
    assert_eq!(run.column("n"), ["10", "20", "30"]);

    let run = read(
        &source(dir.path(), json!({"path": "bom.csv"})),
        "bom",
        None,
        OnError::Fail,
    )
    .await
    .unwrap();
    assert_eq!(run.column("id"), ["1", "2"]);

    let run = read(
        &source(dir.path(), json!({"path": "tabs.tsv"})),
        "tabs",
        None,
        OnError::Fail,
    )
    .await
    .unwrap();
    assert_eq!(run.column("name"), ["alice smith", "bob, jr"]);
    assert_eq!(
        types(&run),
        [DataType::Int64, DataType::Utf8, DataType::Float64]
    );

    let src = source(
        dir.path(),
        json!({"path": "no_header.csv", "csv": {"header": false}}),
    );
    let run = read(&src, "no_header", None, OnError::Fail).await.unwrap();
    let names: Vec<&str> = run.schemas[0]
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect();
    assert_eq!(names, ["column_1", "column_2", "column_3"]);
    assert_eq!(
        types(&run),
        [DataType::Int64, DataType::Utf8, DataType::Boolean]
    );
    assert_eq!(run.column("column_2"), ["alice", "bob"]);
}

#[tokio::test]
async fn declared_types_win() {
    let dir = project(&[("d.csv", &fixture("declared_types.csv"))]);
    let src = source(
        dir.path(),
        json!({"path": "d.csv", "columns": {"amount": "decimal(12,2)", "paid_at": "timestamptz", "id": "string"}}),
    );
    let run = read(&src, "d", None, OnError::Fail).await.unwrap();
    assert_eq!(
        types(&run),
        [DataType::Utf8, DataType::Decimal128(12, 2), utc()]
    );
    assert_eq!(run.column("amount"), ["12.34", "0.50", "99999.99"]);
    assert_eq!(
        run.column("paid_at"),
        [
            "2024-01-01T08:00:00Z",
            "2024-01-02T08:30:00Z",
            "2024-01-03T00:00:00.123456Z"
        ]
    );
}

#[tokio::test]
async fn null_values_and_duplicate_headers() {
    let dir = project(&[
        ("d.csv", &fixture("duplicate_headers.csv")),
        ("n.csv", b"a,b\nNA,1\n,2\n"),
    ]);
    let run = read(
        &source(dir.path(), json!({"path": "d.csv"})),
        "d",
        None,
        OnError::Fail,
    )
    .await
    .unwrap();
    let names: Vec<&str> = run.schemas[0]
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect();
    assert_eq!(names, ["id", "name", "column_3", "name_2"]);

    let src = source(
        dir.path(),
        json!({"path": "n.csv", "csv": {"null_values": ["NA"]}}),
    );
    let run = read(&src, "n", None, OnError::Fail).await.unwrap();
    assert_eq!(run.column("a"), ["NULL", ""]);
}

#[tokio::test]
async fn schema_is_announced_again_when_it_changes() {
    let dir = project(&[
        ("d/a.csv", b"id,name\n1,x\n"),
        ("d/b.csv", b"id,name,extra\n2,y,true\n"),
        ("d/c.csv", b"id,name,extra\n3,z,false\n"),
    ]);
    let src = source(dir.path(), json!({"path": "d/*.csv", "stream": "t"}));
    let run = read(&src, "t", None, OnError::Fail).await.unwrap();
    assert_eq!(run.schemas.len(), 2);
    assert_eq!(run.schemas[1].fields().len(), 3);
    assert_eq!(run.checkpoints.len(), 3);
    let kinds: Vec<&str> = run
        .messages
        .iter()
        .filter_map(|m| match m {
            Message::Schema(_) => Some("schema"),
            Message::Batch(_) => Some("batch"),
            Message::Checkpoint(_) => Some("checkpoint"),
            _ => None,
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "schema",
            "batch",
            "checkpoint",
            "schema",
            "batch",
            "checkpoint",
            "batch",
            "checkpoint"
        ]
    );
}

#[tokio::test]
async fn no_matching_file() {
    let dir = project(&[]);
    let src = source(dir.path(), json!({"path": "data/orders*.csv"}));
    let run = read(&src, "orders", None, OnError::Fail).await.unwrap();
    assert!(run.schemas.is_empty() && run.batches.is_empty());
    assert_eq!(run.checkpoints.len(), 1);
    assert_eq!(
        run.checkpoints[0].position,
        "no file matches `data/orders*.csv`"
    );
    assert_eq!(run.state()["files"], json!({}));
    let err = src.check().await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "No file matches `data/orders*.csv` (stream `src.orders`)"
    );
    assert!(
        sluice_core::error::Classify::hint(&err)
            .unwrap()
            .contains("relative to the project folder")
    );
    let streams = src.discover().await.unwrap();
    assert!(streams[0].schema.is_none());
}

#[tokio::test]
async fn check_and_discover_describe_the_files() {
    let dir = project(&[
        ("data/orders1.csv", b"id,v\n1,a\n"),
        ("data/orders2.csv", b"id,v\n2,b\n"),
    ]);
    let src = source(
        dir.path(),
        json!({"path": "data/orders*.csv", "primary_key": ["id"]}),
    );
    assert_eq!(
        src.check().await.unwrap(),
        "2 files match `data/orders*.csv` (18 B)"
    );
    let streams = src.discover().await.unwrap();
    assert_eq!(streams.len(), 1);
    assert_eq!(streams[0].name, "orders");
    assert_eq!(streams[0].primary_key, ["id"]);
    let schema = streams[0].schema.clone().unwrap();
    assert_eq!(schema.field(0).data_type(), &DataType::Int64);
    let details: Vec<String> = streams[0]
        .details
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    assert!(details.contains(&"files=2".to_string()), "{details:?}");
    assert!(
        details.contains(&"schema from=data/orders1.csv".to_string()),
        "{details:?}"
    );
}

#[tokio::test]
async fn configuration_errors_are_explained() {
    let dir = project(&[("a.csv", b"id,amount\n1,2\n")]);
    let err = try_source(
        dir.path(),
        json!({"path": "a.csv", "csv": {"delimiter": "€"}}),
    )
    .unwrap_err();
    assert!(err.to_string().contains("`csv.delimiter`"), "{err}");
    let err = try_source(
        dir.path(),
        json!({"path": "a.csv", "columns": {"id": "integr"}}),
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("Stream `src.a`, column `id`: unknown column type"),
        "{err}"
    );
    let err = try_source(
        dir.path(),
        json!({"path": "a.csv", "cursor": "id", "replication": "full"}),
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("`cursor` but `replication: full`"),
        "{err}"
    );

    let src = source(
        dir.path(),
        json!({"path": "a.csv", "columns": {"amont": "int64"}}),
    );
    let err = read(&src, "a", None, OnError::Fail).await.unwrap_err();
    assert!(err.to_string().contains("did you mean `amount`?"), "{err}");
    let err = read(&src, "orders", None, OnError::Fail).await.unwrap_err();
    assert_eq!(err.to_string(), "Source `src` has no stream `orders`");
    assert_eq!(
        sluice_core::error::Classify::hint(&err).unwrap(),
        "its streams are `a`"
    );
}

#[tokio::test]
async fn dropping_the_stream_stops_the_reader() {
    let mut csv = b"id\n".to_vec();
    for i in 0..50_000 {
        csv.extend_from_slice(format!("{i}\n").as_bytes());
    }
    let dir = project(&[("big.csv", &csv)]);
    let src = source(dir.path(), json!({"path": "big.csv"}));
    let request = sluice_core::connector::ReadRequest {
        stream: "big".into(),
        state: None,
        on_error: OnError::Fail,
        batch_size: 10,
        known_schema: None,
    };
    let mut stream = src.read(request).await.unwrap();
    use futures::StreamExt;
    for _ in 0..3 {
        stream.next().await.unwrap().unwrap();
    }
    drop(stream);
    // The reader notices at its next send; the test would hang otherwise
    // (the runtime waits for blocking tasks on shutdown).
}
