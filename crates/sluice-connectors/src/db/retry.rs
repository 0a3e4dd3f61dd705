//! Connecting with retries: a database that is restarting or briefly
//! unreachable should not fail a load; a wrong password should fail at once.

use std::future::Future;
use std::time::Duration;

/// Attempts to connect (the first try included).
pub const CONNECT_ATTEMPTS: u32 = 4;

/// Run `f` until it succeeds, it fails with an error `transient` says is
/// not worth retrying, or [`CONNECT_ATTEMPTS`] are used up. Waits 250 ms,
/// 500 ms, 1 s (plus up to 25 % jitter) between attempts.
pub async fn with_backoff<T, E, F, Fut>(
    what: &str,
    mut f: F,
    transient: impl Fn(&E) -> bool,
) -> Result<T, E>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: std::fmt::Display,
{
    let mut delay = Duration::from_millis(250);
    let mut attempt = 1;
    loop {
        match f().await {
            Ok(v) => return Ok(v),
            Err(e) if attempt < CONNECT_ATTEMPTS && transient(&e) => {
                let jitter = delay.mul_f64(jitter_fraction() * 0.25);
                tracing::warn!(
                    "{what}: {e}; retrying in {:.1}s (attempt {attempt} of {CONNECT_ATTEMPTS})",
                    (delay + jitter).as_secs_f64()
                );
                tokio::time::sleep(delay + jitter).await;
                delay *= 2;
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

fn jitter_fraction() -> f64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    f64::from(nanos % 1000) / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test]
    async fn retries_transient_errors_only() {
        let calls = AtomicU32::new(0);
        let r: Result<u32, String> = with_backoff(
            "test",
            || async {
                let n = calls.fetch_add(1, Ordering::SeqCst);
                if n < 2 {
                    Err("refused".to_string())
                } else {
                    Ok(n)
                }
            },
            |e| e == "refused",
        )
        .await;
        assert_eq!(r, Ok(2));
        let calls = AtomicU32::new(0);
        let r: Result<(), String> = with_backoff(
            "test",
            || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err("bad password".to_string())
            },
            |e| e == "refused",
        )
        .await;
        assert!(r.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }
}
