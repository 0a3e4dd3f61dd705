//! Time the `files` source on one file, end to end through its message stream.
//!
//! ```text
//! python3 ../shared/bench/peers/gen_orders.py --rows 1000000 --seed 42 --out /tmp/orders_1m.csv
//! cargo run --release -p sluice-connectors --example files_bench -- /tmp/orders_1m.csv [batch_size] [repeats]
//! ```
//!
//! Decoding runs on one blocking thread; this consumer only counts rows, so
//! the time is the decoder's (plus channel hand-offs).

use std::path::Path;
use std::time::Instant;

use futures::StreamExt;
use sluice_connectors::FileSource;
use sluice_core::config::{FilesSource, OnError, Replication};
use sluice_core::connector::{Message, ReadRequest, Source};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let file = args
        .next()
        .unwrap_or_else(|| "/tmp/orders_1m.csv".to_string());
    let batch_size: usize = args.next().map_or(Ok(65_536), |s| s.parse())?;
    let repeats: usize = args.next().map_or(Ok(3), |s| s.parse())?;
    let path = Path::new(&file);
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let config = FilesSource {
        kind: "files".into(),
        path: Some(vec![name]),
        stream: Some("bench".into()),
        replication: Some(Replication::Full),
        ..Default::default()
    };
    let source = FileSource::new("bench", &config, dir)?;
    for _ in 0..repeats {
        let start = Instant::now();
        let request = ReadRequest {
            stream: "bench".into(),
            state: None,
            on_error: OnError::Fail,
            batch_size,
            known_schema: None,
        };
        let mut stream = source.read(request).await?;
        let (mut rows, mut batches, mut bytes) = (0usize, 0usize, 0u64);
        let mut schema = None;
        while let Some(message) = stream.next().await {
            match message? {
                Message::Batch(b) => {
                    rows += b.num_rows();
                    batches += 1;
                }
                Message::Schema(s) => schema = Some(s),
                Message::Progress(p) => bytes += p.bytes,
                _ => {}
            }
        }
        let secs = start.elapsed().as_secs_f64();
        eprintln!(
            "{rows} rows in {batches} batches, {:.1} MB in {secs:.3} s ({:.0} MB/s, {:.2} M rows/s)",
            bytes as f64 / 1e6,
            bytes as f64 / 1e6 / secs,
            rows as f64 / 1e6 / secs
        );
        if let Some(schema) = schema.take() {
            let types: Vec<String> = schema
                .fields()
                .iter()
                .map(|f| format!("{}: {}", f.name(), f.data_type()))
                .collect();
            eprintln!("schema: {}", types.join(", "));
        }
    }
    Ok(())
}
