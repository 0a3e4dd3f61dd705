//! Connecting to PostgreSQL: the URL, TLS per `sslmode`, retries with
//! backoff for transient failures, and errors that name host, port and
//! database (never the password) and say what to check.

use std::sync::Arc;

use sluice_core::connector::ConnectorError;
use tokio_postgres::config::Host;
use tokio_postgres::error::SqlState;

use crate::db::describe_url;
use crate::db::retry::with_backoff;

/// Connects to one database.
#[derive(Clone)]
pub struct PgConnector {
    config: tokio_postgres::Config,
    shown: String,
    tls: tokio_postgres_rustls::MakeRustlsConnect,
}

impl std::fmt::Debug for PgConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgConnector")
            .field("url", &self.shown)
            .finish()
    }
}

impl PgConnector {
    /// From a `postgres://` URL (or a `key=value` connection string).
    ///
    /// `sslmode` follows libpq: `disable`; `prefer` (the default) and
    /// `require` encrypt without checking the server's certificate;
    /// `verify-ca` / `verify-full` also check it against the web PKI roots.
    pub fn from_url(url: &str) -> Result<PgConnector, ConnectorError> {
        let (url, verify) = strip_verify_modes(url);
        let config: tokio_postgres::Config = url.parse().map_err(|e| {
            ConnectorError::config(
                format!("The PostgreSQL URL `{}` is not valid: {e}", describe_url(&url)),
                Some("write it as postgres://user:password@host:5432/database (percent-encode special characters in the password)".to_string()),
            )
        })?;
        // An explicit provider: two are linked, and no process default may be set (tests).
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| ConnectorError::Internal(format!("TLS set-up: {e}")))?;
        let tls = if verify {
            let roots =
                rustls::RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            builder.with_root_certificates(roots).with_no_client_auth()
        } else {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(EncryptOnly(provider)))
                .with_no_client_auth()
        };
        Ok(PgConnector {
            shown: describe_pg(&config),
            config,
            tls: tokio_postgres_rustls::MakeRustlsConnect::new(tls),
        })
    }

    /// `postgres://user@host:port/db`, for messages.
    pub fn describe(&self) -> &str {
        &self.shown
    }

    /// The database name.
    pub fn database(&self) -> String {
        self.config
            .get_dbname()
            .map(str::to_string)
            .or_else(|| self.config.get_user().map(str::to_string))
            .unwrap_or_else(|| "postgres".into())
    }

    /// Open a connection (retrying transient failures); its driver runs on
    /// the tokio runtime until the client is dropped.
    pub async fn connect(&self) -> Result<tokio_postgres::Client, ConnectorError> {
        let what = format!("connecting to {}", self.shown);
        let (client, connection) = with_backoff(
            &what,
            || self.config.connect(self.tls.clone()),
            |e: &tokio_postgres::Error| e.as_db_error().is_none() && !is_auth(e),
        )
        .await
        .map_err(|e| self.error(e))?;
        let shown = self.shown.clone();
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!("connection to {shown} ended: {e}");
            }
        });
        Ok(client)
    }

    /// A connection error with what to check.
    pub fn error(&self, e: tokio_postgres::Error) -> ConnectorError {
        let (host, port) = host_port(&self.config);
        let db = self.database();
        let user = self.config.get_user().unwrap_or("(default)").to_string();
        let cause = error_text(&e);
        let (hint, user_error) = match e.code() {
            Some(c) if *c == SqlState::INVALID_PASSWORD || *c == SqlState::INVALID_AUTHORIZATION_SPECIFICATION => (
                format!("check the user `{user}` and its password (set in the URL, from the environment or `.env`), and pg_hba.conf on the server"),
                true,
            ),
            Some(c) if *c == SqlState::INVALID_CATALOG_NAME => (
                format!("the server has no database `{db}`; create it or fix the URL's database name"),
                true,
            ),
            _ if cause.contains("TLS") || cause.contains("tls") || cause.contains("certificate") => (
                "check `sslmode` in the URL (disable, prefer, require) and the server's certificate".to_string(),
                true,
            ),
            _ => (
                format!("check that PostgreSQL runs and accepts TCP connections on {host}:{port} (listen_addresses, firewall), and the URL's host and port"),
                false,
            ),
        };
        if user_error {
            ConnectorError::config(
                format!("Cannot connect to PostgreSQL at {}: {cause}", self.shown),
                Some(hint),
            )
        } else {
            ConnectorError::External {
                message: format!(
                    "Cannot connect to PostgreSQL at {} ({host}:{port}, database `{db}`): {cause}\nhint: {hint}",
                    self.shown
                ),
                source: Some(Box::new(e)),
                retryable: true,
            }
        }
    }
}

/// `sslmode=verify-ca|verify-full` → `require` plus certificate checks
/// (tokio-postgres knows only disable/prefer/require).
fn strip_verify_modes(url: &str) -> (String, bool) {
    for mode in ["verify-full", "verify-ca"] {
        let key = format!("sslmode={mode}");
        if url.contains(&key) {
            return (url.replace(&key, "sslmode=require"), true);
        }
    }
    (url.to_string(), false)
}

/// libpq's `prefer`/`require`: encrypt, accept the server's certificate.
#[derive(Debug)]
struct EncryptOnly(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for EncryptOnly {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn is_auth(e: &tokio_postgres::Error) -> bool {
    error_text(e).contains("password")
}

/// The most useful text of an error: the server's message, or the cause chain.
pub fn error_text(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        let mut s = db.message().to_string();
        if let Some(d) = db.detail() {
            s.push_str(&format!(" ({d})"));
        }
        return s;
    }
    let mut s = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(&format!(": {t}"));
        }
        cause = c.source();
    }
    s
}

fn host_port(config: &tokio_postgres::Config) -> (String, u16) {
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(h)) => h.clone(),
        Some(Host::Unix(p)) => p.display().to_string(),
        None => "localhost".into(),
    };
    (host, config.get_ports().first().copied().unwrap_or(5432))
}

fn describe_pg(config: &tokio_postgres::Config) -> String {
    let (host, port) = host_port(config);
    let user = config
        .get_user()
        .map(|u| format!("{u}@"))
        .unwrap_or_default();
    let db = config.get_dbname().unwrap_or("");
    format!("postgres://{user}{host}:{port}/{db}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describes_without_password() {
        let c = PgConnector::from_url("postgres://app:s3cret@db.local:6543/shop").unwrap();
        assert_eq!(c.describe(), "postgres://app@db.local:6543/shop");
        assert_eq!(c.database(), "shop");
        assert!(!format!("{c:?}").contains("s3cret"));
        let e = PgConnector::from_url("postgres://app:pw@host:notaport/db").unwrap_err();
        assert!(!e.to_string().contains("pw@"), "{e}");
    }

    #[tokio::test]
    async fn unreachable_server_is_a_clear_error() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let c = PgConnector::from_url(&format!(
            "postgres://postgres@127.0.0.1:{port}/x?connect_timeout=1"
        ))
        .unwrap();
        let e = c.connect().await.unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains(&format!("127.0.0.1:{port}")) && text.contains("accepts TCP connections"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn missing_database_is_a_user_error() {
        let c =
            PgConnector::from_url("postgres://postgres@127.0.0.1:5432/sluice_no_such_db").unwrap();
        let e = c.connect().await.unwrap_err();
        use sluice_core::error::Classify;
        assert!(
            e.hint()
                .unwrap()
                .contains("no database `sluice_no_such_db`"),
            "{e}"
        );
    }
}
