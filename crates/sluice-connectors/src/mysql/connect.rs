//! Connecting to MySQL/MariaDB: the URL, the session every read runs in,
//! retries with backoff for transient failures, and errors that name host,
//! port and database (never the password) and say what to check.

use std::time::Duration;

use mysql_async::{Conn, Opts, OptsBuilder};
use sluice_core::connector::ConnectorError;

use crate::db::describe_url;
use crate::db::retry::with_backoff;

/// How long one connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// What every connection runs first:
/// - `time_zone = '+00:00'`: `timestamp` columns arrive in UTC, and a
///   bookmark on one compares in UTC;
/// - no `NO_BACKSLASH_ESCAPES`: string literals are escaped the default way;
/// - `net_write_timeout` of an hour: the server does not drop a streaming
///   read while the destination is slow to take the next batch.
const SESSION: [&str; 3] = [
    "SET time_zone = '+00:00'",
    "SET SESSION sql_mode = REPLACE(@@SESSION.sql_mode, 'NO_BACKSLASH_ESCAPES', '')",
    "SET SESSION net_write_timeout = 3600",
];

/// Connects to one server (and database).
#[derive(Clone)]
pub struct MyConnector {
    opts: Opts,
    shown: String,
}

impl std::fmt::Debug for MyConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MyConnector")
            .field("url", &self.shown)
            .finish()
    }
}

impl MyConnector {
    /// From a `mysql://user:password@host:3306/database` URL (`mariadb://`
    /// is accepted too).
    pub fn from_url(url: &str) -> Result<MyConnector, ConnectorError> {
        let url = match url.strip_prefix("mariadb://") {
            Some(rest) => format!("mysql://{rest}"),
            None => url.to_string(),
        };
        let opts = Opts::from_url(&url).map_err(|e| {
            ConnectorError::config(
                format!(
                    "The MySQL URL `{}` is not valid: {}",
                    describe_url(&url),
                    // Parameter errors quote values, never the password.
                    e
                ),
                Some("write it as mysql://user:password@host:3306/database (percent-encode special characters in the password)".to_string()),
            )
        })?;
        let opts: Opts = OptsBuilder::from_opts(opts).setup(SESSION.to_vec()).into();
        let user = opts.user().map(|u| format!("{u}@")).unwrap_or_default();
        let shown = format!(
            "mysql://{user}{}:{}/{}",
            opts.ip_or_hostname(),
            opts.tcp_port(),
            opts.db_name().unwrap_or("")
        );
        Ok(MyConnector { opts, shown })
    }

    /// `mysql://user@host:port/db`, for messages.
    pub fn describe(&self) -> &str {
        &self.shown
    }

    /// The URL's database, if it names one.
    pub fn database(&self) -> Option<&str> {
        self.opts.db_name().filter(|d| !d.is_empty())
    }

    /// Open a connection, retrying transient failures.
    pub async fn connect(&self) -> Result<Conn, ConnectorError> {
        let what = format!("connecting to {}", self.shown);
        with_backoff(
            &what,
            || async {
                match tokio::time::timeout(CONNECT_TIMEOUT, Conn::new(self.opts.clone())).await {
                    Ok(r) => r.map_err(Failure::Driver),
                    Err(_) => Err(Failure::Timeout),
                }
            },
            Failure::transient,
        )
        .await
        .map_err(|e| self.error(e))
    }

    /// A connection error with what to check.
    fn error(&self, e: Failure) -> ConnectorError {
        let (host, port) = (self.opts.ip_or_hostname(), self.opts.tcp_port());
        let db = self.database().unwrap_or("(none)");
        let user = self.opts.user().unwrap_or("(default)");
        let cause = e.to_string();
        let hint = match &e {
            Failure::Driver(mysql_async::Error::Server(s)) => match s.code {
                1045 | 1698 => Some(format!(
                    "check the user `{user}` and its password (set in the URL, from the environment or `.env`), and that the user may connect from this host"
                )),
                1044 => Some(format!(
                    "the user `{user}` may not use the database `{db}`; GRANT SELECT on it, or connect as another user"
                )),
                1049 => Some(format!(
                    "the server has no database `{db}`; create it or fix the URL's database name"
                )),
                _ => None,
            },
            Failure::Driver(mysql_async::Error::Io(mysql_async::IoError::Tls(_))) => Some(
                "check the TLS settings in the URL (`require_ssl`, `verify_ca`) and the server's certificate".to_string(),
            ),
            _ => None,
        };
        match hint {
            Some(hint) => ConnectorError::config(
                format!("Cannot connect to MySQL at {}: {cause}", self.shown),
                Some(hint),
            ),
            None => ConnectorError::External {
                message: format!(
                    "Cannot connect to MySQL at {} ({host}:{port}, database `{db}`): {cause}\nhint: check that MySQL/MariaDB runs and accepts TCP connections on {host}:{port} (bind-address, skip-networking, firewall), and the URL's host and port",
                    self.shown
                ),
                source: match e {
                    Failure::Driver(d) => Some(Box::new(d)),
                    Failure::Timeout => None,
                },
                retryable: true,
            },
        }
    }
}

/// Why a connection attempt failed.
#[derive(Debug)]
enum Failure {
    Driver(mysql_async::Error),
    Timeout,
}

impl Failure {
    /// Worth another attempt: the network or a busy server, not a refusal.
    fn transient(&self) -> bool {
        match self {
            Failure::Timeout => true,
            Failure::Driver(mysql_async::Error::Io(mysql_async::IoError::Io(_))) => true,
            Failure::Driver(mysql_async::Error::Driver(
                mysql_async::DriverError::ConnectionClosed,
            )) => true,
            // Too many connections; server shutting down or starting.
            Failure::Driver(mysql_async::Error::Server(s)) => {
                matches!(s.code, 1040 | 1053 | 1077 | 1203)
            }
            Failure::Driver(_) => false,
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Timeout => write!(f, "no answer within {} s", CONNECT_TIMEOUT.as_secs()),
            Failure::Driver(e) => f.write_str(&error_text(e)),
        }
    }
}

/// The most useful text of an error: the server's message, or the cause chain.
pub fn error_text(e: &mysql_async::Error) -> String {
    if let mysql_async::Error::Server(s) = e {
        return format!("{} (error {}, SQLSTATE {})", s.message, s.code, s.state);
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

/// Quote an identifier: `` `Order ID` ``.
pub fn ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// A string literal for MySQL (backslashes are escapes: see [`SESSION`]).
pub fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\\', "\\\\").replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_core::error::Classify;

    #[test]
    fn describes_without_password() {
        let c = MyConnector::from_url("mysql://app:s3cret@db.local:3307/shop").unwrap();
        assert_eq!(c.describe(), "mysql://app@db.local:3307/shop");
        assert_eq!(c.database(), Some("shop"));
        assert!(!format!("{c:?}").contains("s3cret"));
        let e = MyConnector::from_url("mysql://app:s3cret@host:notaport/db").unwrap_err();
        assert!(!e.to_string().contains("s3cret"), "{e}");
        let c = MyConnector::from_url("mariadb://app@db.local/shop").unwrap();
        assert_eq!(c.describe(), "mysql://app@db.local:3306/shop");
        assert_eq!(ident("a`b"), "`a``b`");
        assert_eq!(literal(r"it's \"), r"'it''s \\'");
    }

    #[tokio::test]
    async fn unreachable_server_is_a_clear_error() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let c = MyConnector::from_url(&format!("mysql://root:pw@127.0.0.1:{port}/x")).unwrap();
        let e = c.connect().await.unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains(&format!("127.0.0.1:{port}")) && text.contains("accepts TCP connections"),
            "{text}"
        );
        assert!(!text.contains("pw"), "{text}");
    }

    #[tokio::test]
    async fn wrong_password_and_missing_database_are_user_errors() {
        let c = MyConnector::from_url("mysql://root:wrong-secret@127.0.0.1:3306/mysql").unwrap();
        let e = c.connect().await.unwrap_err();
        assert!(e.hint().unwrap().contains("password"), "{e}");
        assert!(!e.to_string().contains("wrong-secret"), "{e}");
        let c = MyConnector::from_url("mysql://root@127.0.0.1:3306/sluice_no_such_db").unwrap();
        let e = c.connect().await.unwrap_err();
        assert!(
            e.hint()
                .unwrap()
                .contains("no database `sluice_no_such_db`"),
            "{e}"
        );
    }
}
