//! A dbt-postgres profile output → a PostgreSQL connection URL.
//!
//! | dbt-postgres key | URL |
//! |---|---|
//! | `host` (a path: a Unix socket folder), `port` (5432) | host and port |
//! | `user`, `password` (alias `pass`) | user info, percent-encoded |
//! | `dbname` (alias `database`) | the path |
//! | `sslmode` | `sslmode` (`allow` reads as `prefer`) |
//! | `connect_timeout` (10), `keepalives_idle` (0: the OS default) | the same parameters |
//! | `search_path` | `options=-c search_path=…` (as dbt-postgres sets it) |
//! | `application_name` (`sluice`) | the same parameter |
//! | `role` | `SET ROLE` after connecting (see [`PgProfile::role`]) |
//!
//! `retries` is not read: connections are retried with backoff anyway.
//! Client certificates (`sslcert`, `sslkey`) and `sslrootcert` are refused.

use indexmap::IndexMap;
use serde_json::Value;

/// What a profile output says about the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgProfile {
    /// The connection URL (holds the password: never show it).
    pub url: String,
    /// `role`: the role to `SET ROLE` to after connecting.
    pub role: Option<String>,
}

/// A profile key that is missing or wrong: what, and what to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileError {
    /// What is wrong.
    pub message: String,
    /// What to do.
    pub hint: String,
}

fn text(settings: &IndexMap<String, Value>, key: &str) -> Option<String> {
    match settings.get(key)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Percent-encode everything but RFC 3986's unreserved characters.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl PgProfile {
    /// Read the output's keys (`settings`, as `profiles.yml` has them).
    pub fn from_settings(settings: &IndexMap<String, Value>) -> Result<PgProfile, ProfileError> {
        let missing = |key: &str, example: &str| ProfileError {
            message: format!("the output has no `{key}`"),
            hint: format!("dbt-postgres needs it: add `{key}: {example}`"),
        };
        for key in ["sslcert", "sslkey", "sslrootcert"] {
            if settings.contains_key(key) {
                return Err(ProfileError {
                    message: format!("`{key}` is not supported by Sluice's PostgreSQL engine"),
                    hint: "remove it: `sslmode: require` encrypts, `verify-full` checks the server against the web PKI roots".into(),
                });
            }
        }
        let host = text(settings, "host").ok_or_else(|| missing("host", "localhost"))?;
        let user = text(settings, "user").ok_or_else(|| missing("user", "postgres"))?;
        let dbname = text(settings, "dbname")
            .or_else(|| text(settings, "database"))
            .ok_or_else(|| missing("dbname", "analytics"))?;
        let password = text(settings, "password")
            .or_else(|| text(settings, "pass"))
            .unwrap_or_default();
        let port = match settings.get("port") {
            None => 5432,
            Some(v) => v
                .as_u64()
                .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
                .and_then(|p| u16::try_from(p).ok())
                .ok_or_else(|| ProfileError {
                    message: format!("`port: {v}` is not a port number"),
                    hint: "write it as `port: 5432`".into(),
                })?,
        };
        let mut params: Vec<(&str, String)> = Vec::new();
        if let Some(mode) = text(settings, "sslmode") {
            let mode = match mode.as_str() {
                "allow" => "prefer".to_string(),
                "disable" | "prefer" | "require" | "verify-ca" | "verify-full" => mode,
                other => {
                    return Err(ProfileError {
                        message: format!("`sslmode: {other}` is not an SSL mode"),
                        hint: "use one of disable, allow, prefer, require, verify-ca, verify-full"
                            .into(),
                    });
                }
            };
            params.push(("sslmode", mode));
        }
        let seconds = |key: &str, default: u64| -> Result<u64, ProfileError> {
            match settings.get(key) {
                None | Some(Value::Null) => Ok(default),
                Some(v) => v
                    .as_u64()
                    .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
                    .ok_or_else(|| ProfileError {
                        message: format!("`{key}: {v}` is not a number of seconds"),
                        hint: format!("write it as `{key}: 10`"),
                    }),
            }
        };
        params.push((
            "connect_timeout",
            seconds("connect_timeout", 10)?.to_string(),
        ));
        let idle = seconds("keepalives_idle", 0)?;
        if idle > 0 {
            params.push(("keepalives_idle", idle.to_string()));
        }
        params.push((
            "application_name",
            text(settings, "application_name").unwrap_or_else(|| "sluice".into()),
        ));
        if let Some(path) = text(settings, "search_path").filter(|p| !p.trim().is_empty()) {
            params.push((
                "options",
                format!("-c search_path={}", path.replace(' ', "\\ ")),
            ));
        }
        let userinfo = if password.is_empty() {
            encode(&user)
        } else {
            format!("{}:{}", encode(&user), encode(&password))
        };
        let host = if host.starts_with('/') {
            encode(&host)
        } else if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]")
        } else {
            host
        };
        let query: Vec<String> = params
            .iter()
            .map(|(k, v)| format!("{k}={}", encode(v)))
            .collect();
        Ok(PgProfile {
            url: format!(
                "postgres://{userinfo}@{host}:{port}/{}?{}",
                encode(&dbname),
                query.join("&")
            ),
            role: text(settings, "role").filter(|r| !r.is_empty()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(yaml: &str) -> IndexMap<String, Value> {
        serde_saphyr::from_str(yaml).unwrap()
    }

    #[test]
    fn dbt_keys_make_a_url() {
        let p = PgProfile::from_settings(&settings(
            "{type: postgres, host: db.local, port: 6543, user: app, password: 'p@ss:w/rd %', dbname: shop, schema: main, sslmode: require, search_path: 'a, b', keepalives_idle: 30, role: loader}",
        ))
        .unwrap();
        assert_eq!(
            p.url,
            "postgres://app:p%40ss%3Aw%2Frd%20%25@db.local:6543/shop?sslmode=require&connect_timeout=10&keepalives_idle=30&application_name=sluice&options=-c%20search_path%3Da%2C%5C%20b"
        );
        assert_eq!(p.role.as_deref(), Some("loader"));
        let c = sluice_connectors::postgres::PgConnector::from_url(&p.url).unwrap();
        assert_eq!(c.describe(), "postgres://app@db.local:6543/shop");

        let p = PgProfile::from_settings(&settings(
            "{host: /var/run/postgresql, user: me, password: '', database: wh, port: '5433'}",
        ))
        .unwrap();
        assert!(
            p.url
                .starts_with("postgres://me@%2Fvar%2Frun%2Fpostgresql:5433/wh?"),
            "{}",
            p.url
        );
        assert!(sluice_connectors::postgres::PgConnector::from_url(&p.url).is_ok());
    }

    #[test]
    fn missing_and_wrong_keys_say_what_to_write() {
        let e = PgProfile::from_settings(&settings("{host: h, dbname: d}")).unwrap_err();
        assert_eq!(e.message, "the output has no `user`");
        assert!(e.hint.contains("user: postgres"));
        let e = PgProfile::from_settings(&settings("{host: h, user: u, dbname: d, port: x}"))
            .unwrap_err();
        assert!(e.message.contains("`port: \"x\"`"), "{}", e.message);
        let e =
            PgProfile::from_settings(&settings("{host: h, user: u, dbname: d, sslmode: always}"))
                .unwrap_err();
        assert!(e.hint.contains("verify-full"));
        let e = PgProfile::from_settings(&settings(
            "{host: h, user: u, dbname: d, sslrootcert: ca.pem}",
        ))
        .unwrap_err();
        assert!(e.message.contains("`sslrootcert`"));
    }
}
