//! Anomalies in a metric's history, with no service: a value is an anomaly
//! when it lies more than `threshold` robust standard deviations from the
//! median of the recent values (median absolute deviation × 1.4826, so one
//! outlier in the history does not hide the next).

/// The verdict on one value.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// Median of the history.
    pub median: f64,
    /// The robust standard deviation used.
    pub scale: f64,
    /// How many of those the value lies from the median.
    pub score: f64,
    /// `score > threshold`.
    pub anomalous: bool,
}

fn median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

/// Judge `value` against `history` (most recent last). `None` while the
/// history is shorter than `min_history`.
pub fn judge(history: &[f64], value: f64, threshold: f64, min_history: usize) -> Option<Verdict> {
    let mut h: Vec<f64> = history.iter().copied().filter(|v| v.is_finite()).collect();
    if h.len() < min_history.max(1) {
        return None;
    }
    h.sort_by(f64::total_cmp);
    let med = median(&h);
    let mut dev: Vec<f64> = h.iter().map(|v| (v - med).abs()).collect();
    dev.sort_by(f64::total_cmp);
    // A flat history (MAD 0) would flag any change at all: the scale is at
    // least 1% of the median's size (and never zero).
    let scale = (median(&dev) * 1.4826).max(med.abs() * 0.01).max(1e-9);
    let score = (value - med).abs() / scale;
    Some(Verdict {
        median: med,
        scale,
        score,
        anomalous: score > threshold,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_jump_is_an_anomaly_and_noise_is_not() {
        let history = [1000.0, 1010.0, 990.0, 1005.0, 995.0, 1002.0];
        let v = judge(&history, 1008.0, 3.0, 5).expect("enough history");
        assert!(!v.anomalous, "{v:?}");
        let v = judge(&history, 400.0, 3.0, 5).expect("enough history");
        assert!(v.anomalous, "{v:?}");
        assert!(judge(&history[..3], 400.0, 3.0, 5).is_none());
        // One earlier outlier does not widen the band.
        let spiky = [1000.0, 1000.0, 5000.0, 1000.0, 1001.0, 999.0];
        assert!(judge(&spiky, 1300.0, 3.0, 5).expect("judged").anomalous);
        // A flat history tolerates 1 % steps times the threshold.
        let flat = [50.0; 6];
        assert!(!judge(&flat, 51.0, 3.0, 5).expect("judged").anomalous);
        assert!(judge(&flat, 60.0, 3.0, 5).expect("judged").anomalous);
    }
}
