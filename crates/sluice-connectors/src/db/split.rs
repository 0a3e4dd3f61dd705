//! Key ranges for reading one large table in parallel.

/// Cut `[min, max]` into at most `n` ranges `[lo, hi)`, the last one
/// closed (`hi` = `None`: no upper bound). Every value of the interval is in
/// exactly one range.
pub fn ranges(min: i64, max: i64, n: usize) -> Vec<(i64, Option<i64>)> {
    let n = n.max(1) as i128;
    let (min, max) = (min as i128, max as i128);
    if max < min {
        return vec![(min as i64, None)];
    }
    let span = max - min + 1;
    let n = n.min(span);
    let step = span / n + i128::from(span % n != 0);
    let mut out = Vec::new();
    let mut lo = min;
    while lo <= max {
        let hi = lo + step;
        if hi > max {
            out.push((lo as i64, None));
        } else {
            out.push((lo as i64, Some(hi as i64)));
        }
        lo = hi;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_cover_everything_once() {
        for (min, max, n) in [
            (1, 1_000_000, 4),
            (0, 9, 3),
            (5, 5, 8),
            (-10, 10, 7),
            (i64::MIN, i64::MAX, 4),
        ] {
            let r = ranges(min, max, n);
            assert!(r.len() <= n && !r.is_empty(), "{r:?}");
            assert_eq!(r[0].0, min);
            assert_eq!(r.last().unwrap().1, None);
            for w in r.windows(2) {
                assert_eq!(w[0].1, Some(w[1].0));
            }
        }
        assert_eq!(ranges(0, 9, 3), vec![(0, Some(4)), (4, Some(8)), (8, None)]);
    }
}
