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

/// The tap's own state inside a stream's checkpoint. A state set by hand
/// (`sluice state set s '{"bookmarks": …}'`) is the tap's state itself.
fn singer_state(checkpoint: &Value) -> Option<&Value> {
    match checkpoint.get("singer_state") {
        Some(v) => Some(v),
        None if checkpoint.is_object() => Some(checkpoint),
        None => None,
    }
}

/// The state to start the tap from, given each requested stream's
/// committed checkpoint (`None`: the stream starts over).
///
/// The base is the **oldest** committed checkpoint: every stream has
/// committed the data before it. Taking each stream's own newer bookmark
/// would be unsafe for taps whose streams depend on each other (a child
/// stream read per parent row would miss the parents its failed run did not
/// commit). A stream that starts over loses its bookmark; when the state has
/// no `bookmarks` to remove it from, the tap starts with no state at all.
/// `currently_syncing` is dropped.
pub fn compose_state(streams: &[(String, Option<Value>)]) -> Option<Value> {
    let oldest = streams
        .iter()
        .filter_map(|(_, s)| s.as_ref())
        .filter(|s| singer_state(s).is_some_and(|v| !v.is_null()))
        .min_by_key(|s| received_at(s))
        .and_then(|s| singer_state(s))?;
    let restart: Vec<&String> = streams
        .iter()
        .filter(|(_, s)| {
            s.as_ref()
                .and_then(|s| singer_state(s))
                .is_none_or(Value::is_null)
        })
        .map(|(id, _)| id)
        .collect();
    let mut out = oldest.clone();
    let Some(bookmarks) = out.get_mut("bookmarks").and_then(Value::as_object_mut) else {
        return restart.is_empty().then_some(out);
    };
    for id in restart {
        bookmarks.remove(id.as_str());
    }
    if let Some(o) = out.as_object_mut() {
        o.remove("currently_syncing");
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_committed_state_is_the_base_and_restarting_streams_lose_their_bookmark() {
        let old = checkpoint_state(
            &json!({"bookmarks": {"a": {"v": 1}, "b": {"v": 1}, "c": {"v": 1}}, "currently_syncing": "b"}),
            10,
        );
        let new = checkpoint_state(
            &json!({"bookmarks": {"a": {"v": 2}, "b": {"v": 2}, "c": {"v": 2}}}),
            20,
        );
        // a committed the new state, b only the old one, c starts over: a
        // and b resume from the old state (b's data after it is not
        // committed, and a may depend on b), c from scratch.
        let s = compose_state(&[
            ("a".into(), Some(new.clone())),
            ("b".into(), Some(old.clone())),
            ("c".into(), None),
        ])
        .unwrap();
        assert_eq!(s, json!({"bookmarks": {"a": {"v": 1}, "b": {"v": 1}}}));
        // All streams at the same state: that state.
        assert_eq!(
            compose_state(&[("a".into(), Some(new.clone())), ("b".into(), Some(new))]),
            Some(json!({"bookmarks": {"a": {"v": 2}, "b": {"v": 2}, "c": {"v": 2}}}))
        );
        // Non-standard states: the oldest; with a stream starting over, none.
        let x = checkpoint_state(&json!({"cursor": 5}), 10);
        let y = checkpoint_state(&json!({"cursor": 9}), 20);
        assert_eq!(
            compose_state(&[("a".into(), Some(y.clone())), ("b".into(), Some(x.clone()))]),
            Some(json!({"cursor": 5}))
        );
        assert_eq!(
            compose_state(&[("a".into(), Some(y)), ("b".into(), None)]),
            None
        );
        assert_eq!(compose_state(&[("a".into(), None)]), None);
        // A state set by hand, without the checkpoint wrapper.
        assert_eq!(
            compose_state(&[("a".into(), Some(json!({"bookmarks": {"a": 1}})))]),
            Some(json!({"bookmarks": {"a": 1}}))
        );
    }
}
