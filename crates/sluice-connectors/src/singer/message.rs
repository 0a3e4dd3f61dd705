//! One line of Singer output → a message, without building a JSON tree.
//!
//! A RECORD line is only scanned: the envelope's keys are read and the
//! `record` object is returned as a byte slice, which the stream's Arrow
//! decoder parses once (see `decode.rs`). The other, rarer messages are
//! small and parsed with serde_json.

use std::borrow::Cow;

use serde_json::Value;

/// A parsed Singer message; slices borrow the line.
#[derive(Debug, PartialEq)]
pub enum SingerMessage<'a> {
    /// `SCHEMA`: a stream's JSON Schema and key.
    Schema {
        /// The stream.
        stream: Cow<'a, str>,
        /// Its JSON Schema.
        schema: Value,
        /// `key_properties`.
        key_properties: Vec<String>,
        /// `bookmark_properties` (the replication key, when the tap says).
        bookmark_properties: Vec<String>,
    },
    /// `RECORD`: one row.
    Record {
        /// The stream.
        stream: Cow<'a, str>,
        /// The `record` object's JSON text.
        record: &'a [u8],
        /// The table version it belongs to (`ACTIVATE_VERSION`).
        version: Option<i64>,
    },
    /// `STATE`: everything before is covered by `value`.
    State {
        /// The tap's state.
        value: Value,
    },
    /// `ACTIVATE_VERSION`: the rows of `version` are now the whole table.
    ActivateVersion {
        /// The stream.
        stream: Cow<'a, str>,
        /// The version.
        version: i64,
    },
    /// `BATCH`: rows in files (`manifest`) instead of RECORD lines.
    Batch {
        /// The stream.
        stream: Cow<'a, str>,
        /// `encoding.format`: `jsonl` or `parquet`.
        format: String,
        /// `encoding.compression`: `gzip` or `none`.
        compression: Option<String>,
        /// File URLs.
        manifest: Vec<String>,
    },
    /// Any other `type` (logged and skipped).
    Other {
        /// The message's `type`.
        kind: Cow<'a, str>,
    },
}

/// Why a line is not a Singer message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageError {
    /// What is wrong, in words.
    pub message: String,
    /// The stream, when the line got that far.
    pub stream: Option<String>,
}

impl MessageError {
    fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            stream: None,
        }
    }
}

type Res<T> = std::result::Result<T, MessageError>;

/// Parse one line (without its newline).
pub fn parse(line: &[u8]) -> Res<SingerMessage<'_>> {
    let mut kind: Option<Cow<'_, str>> = None;
    let mut stream: Option<Cow<'_, str>> = None;
    let mut record: Option<&[u8]> = None;
    let mut schema: Option<&[u8]> = None;
    let mut value: Option<&[u8]> = None;
    let mut key_properties: Option<&[u8]> = None;
    let mut bookmark_properties: Option<&[u8]> = None;
    let mut version: Option<&[u8]> = None;
    let mut encoding: Option<&[u8]> = None;
    let mut manifest: Option<&[u8]> = None;

    let mut i = skip_ws(line, 0);
    if line.get(i) != Some(&b'{') {
        return Err(MessageError::new(
            "not a JSON object (a Singer message is one JSON object per line)",
        ));
    }
    i = skip_ws(line, i + 1);
    if line.get(i) == Some(&b'}') {
        return Err(MessageError::new("an empty object has no `type`"));
    }
    loop {
        if line.get(i) != Some(&b'"') {
            return Err(malformed(line, i, "a key"));
        }
        let key_end = skip_string(line, i)?;
        let key = string_at(&line[i..key_end])?;
        i = skip_ws(line, key_end);
        if line.get(i) != Some(&b':') {
            return Err(malformed(line, i, "`:`"));
        }
        i = skip_ws(line, i + 1);
        let value_end = skip_value(line, i)?;
        let v = &line[i..value_end];
        match key.as_ref() {
            "type" => kind = Some(string_value(v, "type")?),
            "stream" => stream = Some(string_value(v, "stream")?),
            "record" => record = Some(v),
            "schema" => schema = Some(v),
            "value" => value = Some(v),
            "key_properties" => key_properties = Some(v),
            "bookmark_properties" => bookmark_properties = Some(v),
            "version" => version = Some(v),
            "encoding" => encoding = Some(v),
            "manifest" => manifest = Some(v),
            _ => {}
        }
        i = skip_ws(line, value_end);
        match line.get(i) {
            Some(b',') => i = skip_ws(line, i + 1),
            Some(b'}') => {
                i = skip_ws(line, i + 1);
                if i != line.len() {
                    return Err(malformed(line, i, "the end of the line"));
                }
                break;
            }
            _ => return Err(malformed(line, i, "`,` or `}`")),
        }
    }
    let kind = kind.ok_or_else(|| MessageError::new("the message has no `type`"))?;
    let with_stream = |e: MessageError| MessageError {
        stream: stream.as_ref().map(|s| s.to_string()),
        ..e
    };
    let need_stream = || {
        stream
            .clone()
            .ok_or_else(|| MessageError::new(format!("a {kind} message without `stream`")))
    };
    Ok(match kind.as_ref() {
        "RECORD" => {
            let stream = need_stream()?;
            let record = record.ok_or_else(|| {
                with_stream(MessageError::new("a RECORD message without `record`"))
            })?;
            if record.first() != Some(&b'{') {
                return Err(with_stream(MessageError::new(
                    "`record` is not a JSON object",
                )));
            }
            let version = version
                .filter(|v| *v != b"null")
                .map(|v| parse_json::<i64>(v, "version"))
                .transpose()
                .map_err(with_stream)?;
            SingerMessage::Record {
                stream,
                record,
                version,
            }
        }
        "SCHEMA" => {
            let stream = need_stream()?;
            let schema = schema
                .ok_or_else(|| with_stream(MessageError::new("a SCHEMA message without `schema`")))
                .and_then(|s| parse_json::<Value>(s, "schema").map_err(with_stream))?;
            let key_properties = match key_properties {
                Some(k) if k != b"null" => {
                    parse_json::<Vec<String>>(k, "key_properties").map_err(with_stream)?
                }
                _ => Vec::new(),
            };
            let bookmark_properties = match bookmark_properties {
                Some(k) if k != b"null" => {
                    parse_json::<Vec<String>>(k, "bookmark_properties").map_err(with_stream)?
                }
                _ => Vec::new(),
            };
            SingerMessage::Schema {
                stream,
                schema,
                key_properties,
                bookmark_properties,
            }
        }
        "STATE" => {
            let value = value
                .ok_or_else(|| MessageError::new("a STATE message without `value`"))
                .and_then(|v| parse_json::<Value>(v, "value"))?;
            SingerMessage::State { value }
        }
        "ACTIVATE_VERSION" => {
            let stream = need_stream()?;
            let version = version
                .ok_or_else(|| {
                    with_stream(MessageError::new(
                        "an ACTIVATE_VERSION message without `version`",
                    ))
                })
                .and_then(|v| parse_json::<i64>(v, "version").map_err(with_stream))?;
            SingerMessage::ActivateVersion { stream, version }
        }
        "BATCH" => {
            let stream = need_stream()?;
            #[derive(serde::Deserialize)]
            struct Encoding {
                format: String,
                #[serde(default)]
                compression: Option<String>,
            }
            let encoding: Encoding = encoding
                .ok_or_else(|| with_stream(MessageError::new("a BATCH message without `encoding`")))
                .and_then(|v| parse_json(v, "encoding").map_err(with_stream))?;
            let manifest: Vec<String> = manifest
                .ok_or_else(|| with_stream(MessageError::new("a BATCH message without `manifest`")))
                .and_then(|v| parse_json(v, "manifest").map_err(with_stream))?;
            SingerMessage::Batch {
                stream,
                format: encoding.format,
                compression: encoding.compression,
                manifest,
            }
        }
        _ => SingerMessage::Other { kind },
    })
}

fn parse_json<'a, T: serde::Deserialize<'a>>(v: &'a [u8], key: &str) -> Res<T> {
    serde_json::from_slice(v).map_err(|e| MessageError::new(format!("`{key}` is not valid: {e}")))
}

fn malformed(line: &[u8], at: usize, expected: &str) -> MessageError {
    let found = match line.get(at) {
        None => "the end of the line".to_string(),
        Some(b) => format!("`{}`", char::from(*b)),
    };
    MessageError::new(format!(
        "malformed JSON at column {}: expected {expected}, found {found}",
        at + 1
    ))
}

pub(crate) fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while let Some(c) = b.get(i) {
        if matches!(c, b' ' | b'\t' | b'\r' | b'\n') {
            i += 1;
        } else {
            break;
        }
    }
    i
}

/// `b[i]` is `"`; the index after the closing quote.
pub(crate) fn skip_string(b: &[u8], i: usize) -> Res<usize> {
    let mut j = i + 1;
    loop {
        match memchr::memchr2(b'"', b'\\', &b[j..]) {
            None => {
                return Err(MessageError::new(format!(
                    "malformed JSON: the string at column {} is not closed",
                    i + 1
                )));
            }
            Some(k) => {
                let at = j + k;
                if b[at] == b'\\' {
                    j = at + 2;
                    if j > b.len() {
                        return Err(MessageError::new(
                            "malformed JSON: the line ends inside a string",
                        ));
                    }
                } else {
                    return Ok(at + 1);
                }
            }
        }
    }
}

/// The index after the JSON value starting at `b[i]`. Objects and arrays
/// are matched bracket for bracket (their contents are checked later, by
/// whoever parses them).
pub(crate) fn skip_value(b: &[u8], i: usize) -> Res<usize> {
    match b.get(i) {
        None => Err(malformed(b, i, "a value")),
        Some(b'"') => skip_string(b, i),
        Some(b'{' | b'[') => {
            let mut depth = 0usize;
            let mut j = i;
            while j < b.len() {
                match b[j] {
                    b'"' => {
                        j = skip_string(b, j)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Ok(j + 1);
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
            Err(MessageError::new(format!(
                "malformed JSON: the {} at column {} is not closed",
                if b[i] == b'{' { "object" } else { "array" },
                i + 1
            )))
        }
        Some(_) => {
            let mut j = i;
            while j < b.len() && !matches!(b[j], b',' | b'}' | b']' | b' ' | b'\t' | b'\r' | b'\n')
            {
                j += 1;
            }
            let token = &b[i..j];
            let ok = matches!(token, b"true" | b"false" | b"null")
                || (!token.is_empty()
                    && token.iter().all(|c| {
                        c.is_ascii_digit() || matches!(c, b'-' | b'+' | b'.' | b'e' | b'E')
                    }));
            if ok {
                Ok(j)
            } else {
                Err(malformed(b, i, "a value"))
            }
        }
    }
}

/// The text of the JSON string `quoted` (with its quotes).
pub(crate) fn string_at(quoted: &[u8]) -> Res<Cow<'_, str>> {
    let inner = &quoted[1..quoted.len() - 1];
    if memchr::memchr(b'\\', inner).is_none() {
        std::str::from_utf8(inner)
            .map(Cow::Borrowed)
            .map_err(|_| MessageError::new("a string is not valid UTF-8"))
    } else {
        serde_json::from_slice::<String>(quoted)
            .map(Cow::Owned)
            .map_err(|e| MessageError::new(format!("a string is not valid JSON: {e}")))
    }
}

fn string_value<'a>(v: &'a [u8], key: &str) -> Res<Cow<'a, str>> {
    if v.first() == Some(&b'"') {
        string_at(v)
    } else {
        Err(MessageError::new(format!("`{key}` is not a string")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_is_sliced_not_parsed() {
        let line = br#"{"type": "RECORD", "stream": "orders", "record": {"id": 1, "note": "a \"}\" b", "tags": [1, {"x": "]"}]}, "time_extracted": "2024-01-01T00:00:00Z"}"#;
        let SingerMessage::Record {
            stream,
            record,
            version,
        } = parse(line).unwrap()
        else {
            panic!("not a record")
        };
        assert_eq!(stream, "orders");
        assert_eq!(version, None);
        let v: Value = serde_json::from_slice(record).unwrap();
        assert_eq!(v["note"], "a \"}\" b");
        assert_eq!(v["tags"][1]["x"], "]");
    }

    #[test]
    fn keys_in_any_order_and_escaped_stream_names() {
        let line =
            br#"{"record":{"a":null},"version":3,"stream":"my\u002dstream","type":"RECORD"}"#;
        let m = parse(line).unwrap();
        assert_eq!(
            m,
            SingerMessage::Record {
                stream: Cow::Owned("my-stream".into()),
                record: br#"{"a":null}"#,
                version: Some(3)
            }
        );
    }

    #[test]
    fn schema_state_activate_batch_other() {
        let m = parse(br#"{"type":"SCHEMA","stream":"s","schema":{"properties":{"id":{"type":"integer"}}},"key_properties":["id"],"bookmark_properties":["updated"]}"#).unwrap();
        let SingerMessage::Schema {
            key_properties,
            bookmark_properties,
            schema,
            ..
        } = m
        else {
            panic!()
        };
        assert_eq!(key_properties, vec!["id"]);
        assert_eq!(bookmark_properties, vec!["updated"]);
        assert_eq!(schema["properties"]["id"]["type"], "integer");
        assert_eq!(
            parse(br#"{"type":"STATE","value":{"bookmarks":{}}}"#).unwrap(),
            SingerMessage::State {
                value: serde_json::json!({"bookmarks": {}})
            }
        );
        assert_eq!(
            parse(br#"{"type":"ACTIVATE_VERSION","stream":"s","version":17}"#).unwrap(),
            SingerMessage::ActivateVersion {
                stream: "s".into(),
                version: 17
            }
        );
        let SingerMessage::Batch {
            format,
            compression,
            manifest,
            ..
        } = parse(br#"{"type":"BATCH","stream":"s","encoding":{"format":"jsonl","compression":"gzip"},"manifest":["file:///tmp/a.jsonl.gz"]}"#).unwrap()
        else {
            panic!()
        };
        assert_eq!(format, "jsonl");
        assert_eq!(compression.as_deref(), Some("gzip"));
        assert_eq!(manifest, vec!["file:///tmp/a.jsonl.gz"]);
        assert_eq!(
            parse(br#"{"type":"METRIC","value":1}"#).unwrap(),
            SingerMessage::Other {
                kind: "METRIC".into()
            }
        );
    }

    #[test]
    fn malformed_lines_say_what_and_where() {
        let e = parse(br#"{"type":"RECORD","stream":"s","record":{"a":1}"#).unwrap_err();
        assert!(e.message.contains("expected `,` or `}`"), "{}", e.message);
        let e = parse(br#"{"type":"RECORD","stream":"s","record":{"a":1"#).unwrap_err();
        assert!(e.message.contains("not closed"), "{}", e.message);
        let e = parse(b"hello").unwrap_err();
        assert!(e.message.contains("not a JSON object"), "{}", e.message);
        let e = parse(br#"{"type":"STATE","value":{"a":}}"#).unwrap_err();
        assert!(e.message.contains("`value` is not valid"), "{}", e.message);
        let e = parse(br#"{"stream":"s","record":{}}"#).unwrap_err();
        assert!(e.message.contains("no `type`"), "{}", e.message);
        let e = parse(br#"{"type":"RECORD","stream":"s","record":[1]}"#).unwrap_err();
        assert_eq!(e.stream.as_deref(), Some("s"));
        let e = parse(br#"{"type":"RECORD","stream":"s","record":{"a":1}} x"#).unwrap_err();
        assert!(e.message.contains("end of the line"), "{}", e.message);
        let e = parse(br#"{"type":"RECORD","stream":"s","record":{"a":1},"n":tru}"#).unwrap_err();
        assert!(e.message.contains("expected a value"), "{}", e.message);
    }
}
