//! Singer state ↔ per-stream checkpoints.

use serde_json::{Value, json};

/// What a stream's checkpoint holds.
pub(super) fn checkpoint_state(value: &Value, at: u128) -> Value {
    json!({"singer_state": value, "received_at_ns": at.to_string()})
}

pub(super) fn received_at(state: &Value) -> u128 {
    state
        .get("received_at_ns")
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

pub(super) fn now_ns() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

/// The state to start the tap from: each requested stream's bookmark from
/// its own committed checkpoint (none when it starts over); everything
/// else from the oldest checkpoint.
pub fn compose_state(streams: &[(String, Option<Value>)]) -> Option<Value> {
    let committed: Vec<(&String, &Value)> = streams
        .iter()
        .filter_map(|(id, s)| {
            s.as_ref()
                .filter(|s| s.get("singer_state").is_some())
                .map(|s| (id, s))
        })
        .collect();
    let oldest = committed
        .iter()
        .min_by_key(|(_, s)| received_at(s))?
        .1
        .get("singer_state")?;
    let standard = committed.iter().all(|(_, s)| {
        s.get("singer_state")
            .and_then(|v| v.get("bookmarks"))
            .is_some_and(Value::is_object)
    });
    if !standard {
        return Some(oldest.clone());
    }
    let mut out = oldest.clone();
    if let Some(o) = out.as_object_mut() {
        o.remove("currently_syncing");
    }
    let Some(bookmarks) = out.get_mut("bookmarks").and_then(Value::as_object_mut) else {
        return Some(oldest.clone());
    };
    for (id, state) in streams {
        let own = state
            .as_ref()
            .and_then(|s| s.get("singer_state"))
            .and_then(|v| v.get("bookmarks"))
            .and_then(|b| b.get(id.as_str()));
        match own {
            Some(b) => {
                bookmarks.insert(id.clone(), b.clone());
            }
            None => {
                bookmarks.remove(id.as_str());
            }
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_is_composed_from_each_streams_own_checkpoint() {
        let old = checkpoint_state(
            &json!({"bookmarks": {"a": {"v": 1}, "b": {"v": 1}, "c": {"v": 1}}, "currently_syncing": "b"}),
            10,
        );
        let new = checkpoint_state(
            &json!({"bookmarks": {"a": {"v": 2}, "b": {"v": 2}, "c": {"v": 2}}}),
            20,
        );
        // a committed the new state, b only the old one, c starts over.
        let s = compose_state(&[
            ("a".into(), Some(new.clone())),
            ("b".into(), Some(old.clone())),
            ("c".into(), None),
        ])
        .unwrap();
        assert_eq!(s, json!({"bookmarks": {"a": {"v": 2}, "b": {"v": 1}}}));
        // Non-standard states: the oldest wins.
        let x = checkpoint_state(&json!({"cursor": 5}), 10);
        let y = checkpoint_state(&json!({"cursor": 9}), 20);
        assert_eq!(
            compose_state(&[("a".into(), Some(y)), ("b".into(), Some(x))]),
            Some(json!({"cursor": 5}))
        );
        assert_eq!(compose_state(&[("a".into(), None)]), None);
    }
}
