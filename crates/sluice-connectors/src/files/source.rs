//! The `Source` implementation: check, discover, and read.
//!
//! `read` lists the files, then hands the work to one blocking thread that
//! decodes file after file and sends messages through a bounded channel
//! (capacity [`CHANNEL_CAPACITY`]); the engine consumes them as a stream.
//! Memory stays at a few batches however large the input, decoding
//! overlaps with the destination's writing, and when the consumer drops the
//! stream the next send fails and the thread stops.

use async_trait::async_trait;
use futures::StreamExt;
use sluice_core::connector::{ConnectorError, MessageStream, ReadRequest, Source, StreamInfo};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::decoder;
use super::listing::{human_bytes, list_files, thousands};
use super::read::ReadJob;
use super::{FileSource, Inner};

/// Messages in flight between the decoding thread and the consumer.
pub const CHANNEL_CAPACITY: usize = 3;

#[async_trait]
impl Source for FileSource {
    fn kind(&self) -> &'static str {
        "files"
    }

    async fn check(&self) -> Result<String, ConnectorError> {
        let inner = self.inner.clone();
        blocking(move || check(&inner)).await
    }

    async fn discover(&self) -> Result<Vec<StreamInfo>, ConnectorError> {
        let inner = self.inner.clone();
        blocking(move || discover(&inner)).await
    }

    async fn read(&self, request: ReadRequest) -> Result<MessageStream, ConnectorError> {
        let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
        let job = ReadJob::new(self.inner.clone(), &request, tx.clone())?;
        let handle = tokio::task::spawn_blocking(move || job.run_to_end());
        // A panic in the decoding thread must not look like a clean end.
        tokio::spawn(async move {
            if let Err(e) = handle.await
                && e.is_panic()
            {
                let message = format!("The file reader stopped unexpectedly: {e}");
                let _ = tx.send(Err(ConnectorError::Internal(message))).await;
            }
        });
        Ok(ReceiverStream::new(rx).boxed())
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ConnectorError> + Send + 'static,
) -> Result<T, ConnectorError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ConnectorError::Internal(format!("A blocking task failed: {e}")))?
}

fn check(inner: &Inner) -> Result<String, ConnectorError> {
    let mut parts = Vec::new();
    for stream in &inner.streams {
        let files = list_files(&inner.project_dir, &stream.spec.paths)?;
        let patterns = format!("`{}`", stream.spec.paths.join("`, `"));
        if files.is_empty() {
            return Err(ConnectorError::config(
                format!(
                    "No file matches {patterns} (stream `{}.{}`)",
                    inner.name, stream.name
                ),
                Some(format!(
                    "paths are relative to the project folder `{}`; check the pattern and that the files exist",
                    inner.project_dir.display()
                )),
            ));
        }
        for file in &files {
            std::fs::File::open(&file.path).map_err(|e| {
                ConnectorError::config(
                    format!("Cannot read `{}`: {e}", file.rel),
                    Some("check the file's permissions".to_string()),
                )
            })?;
        }
        let bytes: u64 = files.iter().map(|f| f.size).sum();
        let count = match files.len() {
            1 => "1 file matches".to_string(),
            n => format!("{} files match", thousands(n as u64)),
        };
        let line = format!("{count} {patterns} ({})", human_bytes(bytes));
        parts.push(if inner.streams.len() > 1 {
            format!("{}: {line}", stream.name)
        } else {
            line
        });
    }
    Ok(parts.join("; "))
}

fn discover(inner: &Inner) -> Result<Vec<StreamInfo>, ConnectorError> {
    let mut out = Vec::new();
    for stream in &inner.streams {
        let files = list_files(&inner.project_dir, &stream.spec.paths)?;
        let mut schema = None;
        let mut details = vec![
            (
                "format".to_string(),
                format!("{:?}", stream.spec.format).to_lowercase(),
            ),
            ("path".to_string(), stream.spec.paths.join(", ")),
            ("files".to_string(), thousands(files.len() as u64)),
            (
                "bytes".to_string(),
                human_bytes(files.iter().map(|f| f.size).sum()),
            ),
            (
                "replication".to_string(),
                format!("{:?}", stream.replication).to_lowercase(),
            ),
        ];
        if let Some(cursor) = &stream.cursor {
            details.push(("cursor".to_string(), cursor.clone()));
        }
        for file in &files {
            if let Some(decoder) = decoder::open(file, stream, 1024, None)? {
                schema = Some(decoder.schema());
                details.push(("schema from".to_string(), file.rel.clone()));
                break;
            }
        }
        out.push(StreamInfo {
            name: stream.name.clone(),
            schema,
            primary_key: stream.primary_key.clone(),
            cursor: None,
            details,
            columns: Vec::new(),
        });
    }
    Ok(out)
}
