//! The Singer catalog of `sluice singer tap`: written by `--discover`, read
//! back from `--catalog` to choose streams and columns.
//!
//! ```text
//! {"streams": [{"tap_stream_id": "orders", "stream": "orders",
//!               "schema": {JSON Schema from singer::encode},
//!               "key_properties": ["id"],
//!               "metadata": [{"breadcrumb": [], "metadata": {"table-key-properties", "forced-replication-method",
//!                                                            "valid-replication-keys", "inclusion", "selected-by-default"}},
//!                            {"breadcrumb": ["properties", "id"], "metadata": {"inclusion", "selected-by-default", "sql-datatype"}}]}]}
//! ```
//!
//! Selection follows the Singer SDK: a stream (or property) is selected by
//! its `selected` metadata, else by `selected-by-default`, else when its
//! `inclusion` is `automatic`. Key and cursor columns are always sent.

use std::collections::{HashMap, HashSet};

use anyhow::Result;
use serde_json::{Map, Value, json};
use sluice_connectors::singer::encode::json_schema;
use sluice_core::config::{Replication, StreamSpec};
use sluice_core::connector::StreamInfo;

use crate::output::UserError;

/// What a catalog selects of one stream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    /// Columns deselected (`selected: false` on their breadcrumb).
    pub columns_off: HashSet<String>,
    /// `replication-method: FULL_TABLE`: read from the start, whatever the state.
    pub full_table: bool,
}

/// `FULL_TABLE` or `INCREMENTAL`: how the source reads the stream.
fn replication_method(spec: &StreamSpec, source_kind: &str) -> &'static str {
    match spec.replication {
        Replication::Full => "FULL_TABLE",
        // A cursor bookmarks rows; a files source without one bookmarks files.
        Replication::Incremental if spec.cursor.is_some() || source_kind == "files" => {
            "INCREMENTAL"
        }
        Replication::Incremental => "FULL_TABLE",
    }
}

/// The catalog of `specs` (the streams as `sluice.yml` resolves them), with
/// schemas from `infos` (the source's discovery).
pub fn catalog(specs: &[StreamSpec], infos: &[StreamInfo], source_kind: &str) -> Value {
    let streams: Vec<Value> = specs
        .iter()
        .map(|spec| {
            let info = infos.iter().find(|i| i.name == spec.stream);
            entry(spec, info, source_kind)
        })
        .collect();
    json!({ "streams": streams })
}

fn entry(spec: &StreamSpec, info: Option<&StreamInfo>, source_kind: &str) -> Value {
    let schema = info.and_then(|i| i.schema.as_ref());
    let json = schema.map_or_else(
        || json!({"type": "object", "properties": {}}),
        |s| json_schema(s),
    );
    let mut stream_md = Map::new();
    stream_md.insert("inclusion".into(), json!("available"));
    stream_md.insert("selected-by-default".into(), json!(true));
    stream_md.insert("table-key-properties".into(), json!(spec.primary_key));
    stream_md.insert(
        "forced-replication-method".into(),
        json!(replication_method(spec, source_kind)),
    );
    if let Some(cursor) = &spec.cursor {
        stream_md.insert("valid-replication-keys".into(), json!([cursor]));
    }
    let mut metadata = vec![json!({"breadcrumb": [], "metadata": stream_md})];
    for field in schema.map(|s| s.fields().iter()).into_iter().flatten() {
        let name = field.name();
        let automatic = spec.primary_key.contains(name) || spec.cursor.as_ref() == Some(name);
        let mut md = Map::new();
        md.insert(
            "inclusion".into(),
            json!(if automatic { "automatic" } else { "available" }),
        );
        md.insert("selected-by-default".into(), json!(true));
        if let Some(detail) = info.and_then(|i| i.columns.iter().find(|c| c.name == *name)) {
            md.insert("sql-datatype".into(), json!(detail.source_type));
        }
        metadata.push(json!({"breadcrumb": ["properties", name], "metadata": md}));
    }
    json!({
        "tap_stream_id": spec.stream,
        "stream": spec.stream,
        "schema": json,
        "key_properties": spec.primary_key,
        "metadata": metadata,
    })
}

/// The streams `catalog` selects, by name, with their column choices.
pub fn selection(catalog: &Value, specs: &[StreamSpec]) -> Result<HashMap<String, Selection>> {
    let Some(entries) = catalog.get("streams").and_then(Value::as_array) else {
        return Err(UserError::error(
            "The catalog has no `streams` list",
            Some(
                "pass the catalog `sluice singer tap … --discover` printed (or an edited copy)"
                    .to_string(),
            ),
        ));
    };
    let known: Vec<&str> = specs.iter().map(|s| s.stream.as_str()).collect();
    let mut chosen = HashMap::new();
    for entry in entries {
        let Some(id) = entry
            .get("tap_stream_id")
            .or_else(|| entry.get("stream"))
            .and_then(Value::as_str)
        else {
            return Err(UserError::error(
                "A catalog stream has neither `tap_stream_id` nor `stream`",
                None,
            ));
        };
        let metadata: Vec<(&Value, &Value)> = entry
            .get("metadata")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|m| Some((m.get("breadcrumb")?, m.get("metadata")?)))
            .collect();
        let stream_md = metadata
            .iter()
            .find(|(b, _)| b.as_array().is_some_and(Vec::is_empty))
            .map(|(_, m)| *m);
        let legacy = entry.get("selected").and_then(Value::as_bool);
        let selected = stream_md
            .and_then(|m| m.get("selected"))
            .and_then(Value::as_bool)
            .or(legacy)
            .unwrap_or_else(|| stream_md.is_some_and(selected_by_default));
        if !selected {
            continue;
        }
        if !known.contains(&id) {
            return Err(UserError::error(
                format!("The catalog selects stream `{id}`, which the source does not have"),
                Some(format!("the source's streams: {}", known.join(", "))),
            ));
        }
        let mut choice = Selection::default();
        for (breadcrumb, md) in &metadata {
            let Some(column) = property_name(breadcrumb) else {
                continue;
            };
            let on = md
                .get("selected")
                .and_then(Value::as_bool)
                .unwrap_or_else(|| selected_by_default(md));
            if !on {
                choice.columns_off.insert(column.to_string());
            }
        }
        let method = stream_md
            .and_then(|m| m.get("replication-method"))
            .or_else(|| entry.get("replication_method"))
            .and_then(Value::as_str);
        choice.full_table = method == Some("FULL_TABLE");
        chosen.insert(id.to_string(), choice);
    }
    Ok(chosen)
}

/// The column of a `["properties", column]` breadcrumb.
fn property_name(breadcrumb: &Value) -> Option<&str> {
    match breadcrumb.as_array()?.as_slice() {
        [p, column] if p == "properties" => column.as_str(),
        _ => None,
    }
}

/// No `selected`: on when `selected-by-default` or `inclusion: automatic`.
fn selected_by_default(md: &Value) -> bool {
    md.get("selected-by-default")
        .and_then(Value::as_bool)
        .unwrap_or(false)
        || md.get("inclusion").and_then(Value::as_str) == Some("automatic")
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_core::TableName;
    use sluice_core::config::{OnError, WriteMode};

    fn spec(stream: &str, cursor: Option<&str>) -> StreamSpec {
        StreamSpec {
            source: "shop".into(),
            stream: stream.into(),
            table: TableName::new("shop", stream),
            write_mode: WriteMode::Append,
            on_error: OnError::Fail,
            replication: Replication::Incremental,
            cursor: cursor.map(str::to_string),
            primary_key: vec!["id".into()],
            destination: None,
            evolution: Default::default(),
            checks: Vec::new(),
            on_fail: Default::default(),
            batch_size: 10,
        }
    }

    fn info(stream: &str) -> StreamInfo {
        use arrow::datatypes::{DataType, Field, Schema};
        StreamInfo {
            name: stream.into(),
            schema: Some(std::sync::Arc::new(Schema::new(vec![
                Field::new("id", DataType::Int64, true),
                Field::new("note", DataType::Utf8, true),
                Field::new("updated_at", DataType::Utf8, true),
            ]))),
            primary_key: vec!["id".into()],
            cursor: None,
            details: Vec::new(),
            columns: Vec::new(),
        }
    }

    #[test]
    fn discovered_catalog_selects_everything_when_passed_back() {
        let specs = [spec("orders", Some("updated_at")), spec("users", None)];
        let cat = catalog(&specs, &[info("orders"), info("users")], "postgres");
        let orders = &cat["streams"][0];
        assert_eq!(orders["tap_stream_id"], "orders");
        assert_eq!(orders["key_properties"], json!(["id"]));
        let md = &orders["metadata"][0]["metadata"];
        assert_eq!(md["forced-replication-method"], "INCREMENTAL");
        assert_eq!(md["valid-replication-keys"], json!(["updated_at"]));
        assert_eq!(
            cat["streams"][1]["metadata"][0]["metadata"]["forced-replication-method"],
            "FULL_TABLE"
        );
        assert_eq!(
            orders["metadata"][1],
            json!({"breadcrumb": ["properties", "id"], "metadata": {"inclusion": "automatic", "selected-by-default": true}})
        );
        let chosen = selection(&cat, &specs).unwrap();
        assert_eq!(chosen.len(), 2);
        assert_eq!(chosen["orders"], Selection::default());
    }

    #[test]
    fn selection_reads_stream_and_column_choices() {
        let specs = [spec("orders", None), spec("users", None)];
        let mut cat = catalog(&specs, &[info("orders"), info("users")], "files");
        cat["streams"][0]["metadata"][0]["metadata"]["selected"] = json!(true);
        cat["streams"][0]["metadata"][0]["metadata"]["replication-method"] = json!("FULL_TABLE");
        cat["streams"][0]["metadata"][2]["metadata"]["selected"] = json!(false);
        cat["streams"][1]["metadata"][0]["metadata"]["selected"] = json!(false);
        let chosen = selection(&cat, &specs).unwrap();
        assert_eq!(chosen.len(), 1);
        assert!(chosen["orders"].full_table);
        assert_eq!(
            chosen["orders"].columns_off,
            HashSet::from(["note".to_string()])
        );
    }

    #[test]
    fn selecting_an_unknown_stream_is_an_error() {
        let specs = [spec("orders", None)];
        let cat = json!({"streams": [{"tap_stream_id": "nope", "selected": true, "schema": {}}]});
        let err = selection(&cat, &specs).unwrap_err();
        assert!(err.to_string().contains("`nope`"), "{err}");
        assert!(selection(&json!({}), &specs).is_err());
    }
}
