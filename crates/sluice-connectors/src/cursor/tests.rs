//! Tests of the cursor tracker.

#![allow(clippy::unwrap_used, reason = "tests may unwrap")]

use std::sync::Arc;

use arrow::array::{
    Decimal128Array, Float64Array, Int64Array, StringArray, TimestampMicrosecondArray,
};
use arrow::datatypes::{Field, Schema};

use super::*;

fn batch(cursor: ArrayRef) -> RecordBatch {
    let n = cursor.len() as i64;
    let schema = Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("c", cursor.data_type().clone(), true),
    ]);
    RecordBatch::try_new(
        Arc::new(schema),
        vec![Arc::new(Int64Array::from_iter_values(0..n)), cursor],
    )
    .unwrap()
}

fn kept(f: &CursorFilter) -> Vec<bool> {
    f.keep.iter().map(|v| v.unwrap_or(false)).collect()
}

#[test]
fn values_round_trip_through_the_state() {
    let values: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(vec![i64::MAX])),
        Arc::new(Float64Array::from(vec![0.1 + 0.2])),
        Arc::new(Float64Array::from(vec![-1.5e300])),
        Arc::new(
            Decimal128Array::from(vec![12_345])
                .with_precision_and_scale(12, 2)
                .unwrap(),
        ),
        Arc::new(TimestampMicrosecondArray::from(vec![1_700_000_000_123_456]).with_timezone("UTC")),
        Arc::new(TimestampMicrosecondArray::from(vec![-1])),
        Arc::new(arrow::array::Date32Array::from(vec![19_782])),
        Arc::new(StringArray::from(vec!["zürich \"quoted\""])),
    ];
    for value in values {
        let mut t = CursorTracker::new("c", None).unwrap();
        t.observe(&batch(value.clone())).unwrap();
        let state = t.final_state();
        let back = CursorTracker::new("c", Some(&state)).unwrap();
        let mark = back.bookmark.clone().unwrap();
        assert_eq!(mark.value.as_ref(), value.as_ref(), "{state}");
        assert_eq!(mark.seen.len(), 1);
        assert_eq!(back.final_state(), state);
    }
}

#[test]
fn filters_by_the_bookmark_inclusively_with_dedupe() {
    let mut t = CursorTracker::new("c", None).unwrap();
    let first = batch(Arc::new(Int64Array::from(vec![5, 9, 9])));
    let f = t.filter(&first, None).unwrap();
    assert_eq!(kept(&f), [true, true, true]);
    t.observe(&first).unwrap();
    let state = t.final_state();
    assert_eq!(state["value"], "9");
    assert_eq!(state["at_value"].as_array().unwrap().len(), 2);

    let mut t = CursorTracker::new("c", Some(&state)).unwrap();
    // Rows 1 and 2 are the ones loaded at 9 (same values, same ids);
    // row 3 is new at 9, row 4 is newer, row 0 older, row 5 NULL.
    let next = batch(Arc::new(Int64Array::from(vec![
        Some(4),
        Some(9),
        Some(9),
        Some(9),
        Some(10),
        None,
    ])));
    let valid = BooleanArray::from(vec![true, true, true, true, true, true]);
    let f = t.filter(&next, Some(&valid)).unwrap();
    assert_eq!(kept(&f), [false, false, false, true, true, false]);
    assert_eq!(f.skipped, 3);
    assert_eq!(f.null_rows, [5]);
    let sent = arrow::compute::filter_record_batch(&next, &f.keep).unwrap();
    t.observe(&sent).unwrap();
    assert_eq!(t.state()["value"], "9");
    assert_eq!(t.state()["in_progress"]["value"], "10");
    assert_eq!(t.final_state()["value"], "10");
}

#[test]
fn a_bookmark_follows_a_widened_column() {
    let mut t = CursorTracker::new("c", None).unwrap();
    t.observe(&batch(Arc::new(Int64Array::from(vec![3]))))
        .unwrap();
    let state = t.final_state();
    let mut t = CursorTracker::new("c", Some(&state)).unwrap();
    let f = t
        .filter(&batch(Arc::new(Float64Array::from(vec![2.5, 3.5]))), None)
        .unwrap();
    assert_eq!(kept(&f), [false, true]);
}

#[test]
fn fingerprints_are_capped() {
    let mut t = CursorTracker::new("c", None).unwrap().with_cap(2);
    t.observe(&batch(Arc::new(Int64Array::from(vec![7, 7, 7]))))
        .unwrap();
    let state = t.final_state();
    assert_eq!(state["at_value"].as_array().unwrap().len(), 2);
    assert_eq!(state["at_value_complete"], false);
    // The row not remembered loads again (at-least-once), the others do not.
    let mut t = CursorTracker::new("c", Some(&state)).unwrap();
    let f = t
        .filter(&batch(Arc::new(Int64Array::from(vec![7, 7, 7]))), None)
        .unwrap();
    assert_eq!(f.keep.true_count(), 1);
}

#[test]
fn fnv1a_matches_the_reference() {
    assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
    assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    assert_eq!(fnv1a(b"foobar"), 0x8594_4171_f739_67e8);
}

#[test]
fn only_ordered_types_can_be_cursors() {
    assert!(check_orderable("c", &DataType::Utf8).is_ok());
    let err = check_orderable("c", &DataType::Boolean).unwrap_err();
    assert_eq!(
        err.to_string(),
        "The cursor column `c` has type bool, which has no order"
    );
}
