//! Schemas shaped like what real taps emit: tap-csv (all strings), singer-sdk
//! typed taps (`["integer","null"]`, `anyOf` with date-time), SDK SQL taps
//! (`x-singer.decimal`), pipelinewise taps (`singer.decimal`).

use super::*;
use serde_json::json;

fn map(schema: Value) -> StreamSchema {
    map_keys(schema, &[])
}

fn map_keys(schema: Value, keys: &[&str]) -> StreamSchema {
    let keys: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
    match stream_schema("users", &schema, &keys) {
        Ok(s) => s,
        Err(e) => panic!("mapping failed: {e}"),
    }
}

fn map_err(schema: Value, keys: &[&str]) -> SchemaError {
    let keys: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
    match stream_schema("users", &schema, &keys) {
        Ok(s) => panic!("expected an error, got {:?}", s.schema),
        Err(e) => e,
    }
}

/// One property `x` with `property` as its schema.
fn one(property: Value) -> StreamSchema {
    map(json!({"type": "object", "properties": {"x": property}}))
}

fn type_of(s: &StreamSchema, name: &str) -> DataType {
    match s.schema.field_with_name(name) {
        Ok(f) => f.data_type().clone(),
        Err(e) => panic!("no field {name}: {e}"),
    }
}

fn utc() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

fn note(path: &str, reason: TextReason) -> ColumnNote {
    ColumnNote {
        column: "x".into(),
        path: path.into(),
        reason,
    }
}

#[test]
fn tap_csv_all_string_schema_keeps_property_order() {
    let s = map_keys(
        json!({"type": "object", "properties": {
            "zeta": {"type": ["string", "null"]},
            "alpha": {"type": ["string", "null"]},
            "id": {"type": ["string", "null"]}
        }}),
        &["id"],
    );
    let names: Vec<&str> = s
        .schema
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect();
    assert_eq!(names, ["zeta", "alpha", "id"]);
    assert!(
        s.schema
            .fields()
            .iter()
            .all(|f| f.data_type() == &DataType::Utf8)
    );
    assert!(s.notes.is_empty());
    assert_eq!(s.key_properties, ["id"]);
}

#[test]
fn sdk_type_lists_with_null_are_the_non_null_type() {
    let s = map(json!({"type": "object", "properties": {
        "id": {"type": ["integer", "null"]},
        "name": {"type": ["null", "string"]},
        "active": {"type": ["boolean", "null"]},
        "score": {"type": "number"}
    }}));
    assert_eq!(type_of(&s, "id"), DataType::Int64);
    assert_eq!(type_of(&s, "name"), DataType::Utf8);
    assert_eq!(type_of(&s, "active"), DataType::Boolean);
    assert_eq!(type_of(&s, "score"), DataType::Float64);
    assert!(s.notes.is_empty());
}

#[test]
fn any_of_date_time_and_null_is_a_timestamp() {
    let s = one(json!({"anyOf": [
        {"type": "string", "format": "date-time"},
        {"type": "null"}
    ]}));
    assert_eq!(type_of(&s, "x"), utc());
    assert!(s.notes.is_empty());
}

#[test]
fn one_of_type_and_null_is_the_type() {
    let s = one(json!({"oneOf": [{"type": "null"}, {"type": ["integer", "null"]}]}));
    assert_eq!(type_of(&s, "x"), DataType::Int64);
}

#[test]
fn several_non_null_types_are_json_text_with_the_reason() {
    let s = one(json!({"type": ["string", "integer", "null"]}));
    assert_eq!(type_of(&s, "x"), DataType::Utf8);
    assert_eq!(
        s.notes,
        [note(
            "properties.x",
            TextReason::Union(vec!["string".into(), "integer".into()])
        )]
    );
    assert_eq!(
        s.note("x").as_deref(),
        Some("`properties.x`: several types (`string`, `integer`), kept as JSON text")
    );
}

#[test]
fn any_of_with_different_types_is_json_text_and_drops_inner_notes() {
    let s = one(json!({"anyOf": [
        {"type": "string", "format": "date-time"},
        {"type": "object"},
        {"type": "null"}
    ]}));
    assert_eq!(type_of(&s, "x"), DataType::Utf8);
    assert_eq!(
        s.notes,
        [note(
            "properties.x.anyOf",
            TextReason::Union(vec!["string (date-time)".into(), "object".into()])
        )]
    );
}

#[test]
fn any_of_alternatives_that_agree_keep_the_type() {
    let s = one(json!({"anyOf": [
        {"type": "string", "format": "date-time"},
        {"type": ["string", "null"], "format": "date-time"}
    ]}));
    assert_eq!(type_of(&s, "x"), utc());
}

#[test]
fn integer_and_number_together_are_float64() {
    let s = map(json!({"type": "object", "properties": {
        "a": {"type": ["integer", "number", "null"]},
        "b": {"anyOf": [{"type": "integer"}, {"type": "number"}, {"type": "null"}]}
    }}));
    assert_eq!(type_of(&s, "a"), DataType::Float64);
    assert_eq!(type_of(&s, "b"), DataType::Float64);
    assert!(s.notes.is_empty());
}

#[test]
fn pipelinewise_singer_decimal_with_precision_and_scale() {
    let s = map(json!({"type": "object", "properties": {
        "price": {"type": ["null", "string"], "format": "singer.decimal", "precision": 12, "scale": 2},
        "qty": {"type": ["null", "number"], "format": "singer.decimal", "precision": 10}
    }}));
    assert_eq!(type_of(&s, "price"), DataType::Decimal128(12, 2));
    assert_eq!(type_of(&s, "qty"), DataType::Decimal128(10, 0));
}

#[test]
fn sdk_sql_tap_x_singer_decimal() {
    let s = one(
        json!({"type": ["string"], "format": "x-singer.decimal", "precision": 38, "scale": 18}),
    );
    assert_eq!(type_of(&s, "x"), DataType::Decimal128(38, 18));
}

#[test]
fn decimal_without_precision_is_exact_text() {
    let s = map(json!({"type": "object", "properties": {
        "x": {"type": "string", "format": "singer.decimal"},
        "y": {"type": ["string", "null"], "format": "x-singer.decimal", "additionalProperties": false}
    }}));
    assert_eq!(type_of(&s, "x"), DataType::Utf8);
    assert_eq!(type_of(&s, "y"), DataType::Utf8);
    assert_eq!(
        s.notes[0],
        note("properties.x", TextReason::DecimalWithoutPrecision)
    );
    assert_eq!(s.notes[1].path, "properties.y");
}

#[test]
fn decimal_wider_than_decimal128_is_exact_text() {
    let s =
        one(json!({"type": "string", "format": "x-singer.decimal", "precision": 60, "scale": 10}));
    assert_eq!(type_of(&s, "x"), DataType::Utf8);
    assert_eq!(
        s.notes,
        [note(
            "properties.x",
            TextReason::DecimalTooWide { precision: 60 }
        )]
    );
}

#[test]
fn decimal_with_scale_over_precision_is_an_error_naming_the_path() {
    let e = map_err(
        json!({"type": "object", "properties": {"order": {"type": "object", "properties": {
            "total": {"type": "string", "format": "singer.decimal", "precision": 4, "scale": 6}
        }}}}),
        &[],
    );
    assert_eq!(
        e,
        SchemaError::BadDecimal {
            stream: "users".into(),
            path: "properties.order.properties.total".into(),
            precision: "4".into(),
            scale: "6".into(),
        }
    );
    assert!(
        e.to_string()
            .starts_with("Stream `users`: `properties.order.properties.total`")
    );
}

#[test]
fn string_formats_map_to_temporal_types_and_others_to_utf8() {
    let s = map(json!({"type": "object", "properties": {
        "updated_at": {"type": ["string", "null"], "format": "date-time"},
        "birthday": {"type": "string", "format": "date"},
        "opens": {"type": "string", "format": "time"},
        "uid": {"type": "string", "format": "uuid"},
        "mail": {"type": "string", "format": "email", "maxLength": 200}
    }}));
    assert_eq!(type_of(&s, "updated_at"), utc());
    assert_eq!(type_of(&s, "birthday"), DataType::Date32);
    assert_eq!(
        type_of(&s, "opens"),
        DataType::Time64(TimeUnit::Microsecond)
    );
    assert_eq!(type_of(&s, "uid"), DataType::Utf8);
    assert_eq!(type_of(&s, "mail"), DataType::Utf8);
    assert!(s.notes.is_empty());
}

#[test]
fn boolean_is_boolean() {
    assert_eq!(
        type_of(&one(json!({"type": "boolean"})), "x"),
        DataType::Boolean
    );
}

#[test]
fn nested_object_with_properties_is_a_struct() {
    let s = one(json!({"type": ["object", "null"], "properties": {
        "street": {"type": ["string", "null"]},
        "geo": {"type": "object", "properties": {"lat": {"type": "number"}}}
    }}));
    let geo = DataType::Struct(Fields::from(vec![Field::new(
        "lat",
        DataType::Float64,
        true,
    )]));
    let expected = DataType::Struct(Fields::from(vec![
        Field::new("street", DataType::Utf8, true),
        Field::new("geo", geo, true),
    ]));
    assert_eq!(type_of(&s, "x"), expected);
}

#[test]
fn object_without_properties_is_json_text() {
    let s = map(json!({"type": "object", "properties": {
        "x": {"type": ["object", "null"], "additionalProperties": {"type": "string"}},
        "y": {"type": "object", "properties": {}}
    }}));
    assert_eq!(type_of(&s, "x"), DataType::Utf8);
    assert_eq!(type_of(&s, "y"), DataType::Utf8);
    assert_eq!(s.notes[0], note("properties.x", TextReason::FreeformObject));
    assert_eq!(s.notes[1].reason, TextReason::FreeformObject);
}

#[test]
fn array_with_items_is_a_list_of_the_item_type() {
    let s = map(json!({"type": "object", "properties": {
        "tags": {"type": ["array", "null"], "items": {"type": "string"}},
        "lines": {"type": "array", "items": {"type": "object", "properties": {
            "sku": {"type": "string"},
            "meta": {}
        }}}
    }}));
    assert_eq!(
        type_of(&s, "tags"),
        DataType::List(Arc::new(Field::new_list_field(DataType::Utf8, true)))
    );
    let line = DataType::Struct(Fields::from(vec![
        Field::new("sku", DataType::Utf8, true),
        Field::new("meta", DataType::Utf8, true),
    ]));
    assert_eq!(
        type_of(&s, "lines"),
        DataType::List(Arc::new(Field::new_list_field(line, true)))
    );
    assert_eq!(
        s.notes,
        [ColumnNote {
            column: "lines".into(),
            path: "properties.lines.items.properties.meta".into(),
            reason: TextReason::AnyValue,
        }]
    );
}

#[test]
fn array_without_items_or_with_tuple_items_is_json_text() {
    let s = map(json!({"type": "object", "properties": {
        "x": {"type": "array"},
        "y": {"type": "array", "items": [{"type": "string"}, {"type": "integer"}]}
    }}));
    assert_eq!(type_of(&s, "x"), DataType::Utf8);
    assert_eq!(type_of(&s, "y"), DataType::Utf8);
    assert_eq!(s.notes[0], note("properties.x", TextReason::UntypedArray));
    assert_eq!(s.notes[1].reason, TextReason::UntypedArray);
}

#[test]
fn empty_schema_and_missing_type_are_json_text() {
    let s = map(json!({"type": "object", "properties": {
        "x": {},
        "y": {"description": "anything"},
        "z": true
    }}));
    for name in ["x", "y", "z"] {
        assert_eq!(type_of(&s, name), DataType::Utf8);
        assert_eq!(
            s.note(name)
                .as_deref()
                .map(|n| n.contains("any JSON value")),
            Some(true)
        );
    }
}

#[test]
fn null_only_type_is_utf8_with_a_note() {
    let s = one(json!({"type": "null"}));
    assert_eq!(type_of(&s, "x"), DataType::Utf8);
    assert_eq!(s.notes, [note("properties.x", TextReason::OnlyNull)]);
}

#[test]
fn local_definitions_refs_are_resolved() {
    let s = map(json!({
        "type": "object",
        "definitions": {"money": {"type": "string", "format": "singer.decimal", "precision": 9, "scale": 2}},
        "$defs": {"when": {"type": ["string", "null"], "format": "date-time"}},
        "properties": {
            "amount": {"$ref": "#/definitions/money"},
            "at": {"anyOf": [{"$ref": "#/$defs/when"}, {"type": "null"}]}
        }
    }));
    assert_eq!(type_of(&s, "amount"), DataType::Decimal128(9, 2));
    assert_eq!(type_of(&s, "at"), utc());
}

#[test]
fn remote_or_missing_ref_is_an_error_naming_stream_and_path() {
    let schema = json!({"type": "object", "properties": {"address": {"type": "object", "properties": {
        "zip": {"$ref": "https://example.com/zip.json"},
        "city": {"$ref": "#/definitions/nowhere"}
    }}}});
    let e = map_err(schema, &[]);
    assert_eq!(
        e,
        SchemaError::UnresolvedRef {
            stream: "users".into(),
            path: "properties.address.properties.zip".into(),
            reference: "https://example.com/zip.json".into(),
        }
    );
    assert_eq!(
        e.to_string(),
        "Stream `users`: `properties.address.properties.zip` has `$ref` \
         `https://example.com/zip.json`, which cannot be resolved"
    );
    let e = map_err(
        json!({"type": "object", "properties": {"city": {"$ref": "#/definitions/nowhere"}}}),
        &[],
    );
    assert!(matches!(e, SchemaError::UnresolvedRef { ref path, .. } if path == "properties.city"));
}

#[test]
fn recursive_ref_is_an_error_not_a_hang() {
    let e = map_err(
        json!({
            "type": "object",
            "definitions": {"loop": {"$ref": "#/definitions/loop"}},
            "properties": {"x": {"$ref": "#/definitions/loop"}}
        }),
        &[],
    );
    assert!(matches!(e, SchemaError::UnresolvedRef { .. }));
}

#[test]
fn key_property_missing_from_properties_is_an_error() {
    let e = map_err(
        json!({"type": "object", "properties": {"id": {"type": "integer"}}}),
        &["id", "tenant"],
    );
    assert_eq!(
        e,
        SchemaError::MissingKey {
            stream: "users".into(),
            key: "tenant".into()
        }
    );
    let c = ConnectorError::from(e);
    let text = c.to_string();
    assert!(text.contains("key property `tenant`"), "{text}");
    assert!(matches!(c, ConnectorError::Config { hint: Some(_), .. }));
}

#[test]
fn key_columns_are_nullable_like_every_column() {
    let s = map_keys(
        json!({"type": "object", "properties": {"id": {"type": "integer"}, "n": {"type": "string"}}}),
        &["id"],
    );
    assert!(s.schema.fields().iter().all(|f| f.is_nullable()));
}

#[test]
fn a_schema_that_is_not_a_record_is_an_error() {
    for schema in [
        json!({"type": "string"}),
        json!({"type": "object"}),
        json!(["not", "a", "schema"]),
    ] {
        assert_eq!(
            map_err(schema, &[]),
            SchemaError::NotARecordSchema {
                stream: "users".into()
            }
        );
    }
    assert!(stream_schema("users", &json!({"properties": {}}), &[]).is_ok());
}

#[test]
fn unknown_type_names_the_path() {
    let e = map_err(
        json!({"type": "object", "properties": {"x": {"type": ["null", "datetime"]}}}),
        &[],
    );
    assert_eq!(
        e,
        SchemaError::BadType {
            stream: "users".into(),
            path: "properties.x".into(),
            found: "\"datetime\"".into(),
        }
    );
    let e = map_err(
        json!({"type": "object", "properties": {"x": {"type": 3}}}),
        &[],
    );
    assert!(matches!(e, SchemaError::BadType { .. }));
}
