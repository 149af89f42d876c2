//! `Config`: every environment variable of API.md §1, parsed once at start-up. A bad
//! value stops start-up with one line naming the variable, e.g.
//! `invalid ACCESS_TOKEN_LIFETIME "5x": expected a duration such as 300s, 5m or 1h`.

use crate::auth::lockout::LockoutPolicy;
use ipnet::IpNet;
use secrecy::SecretString;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
#[error("invalid {variable} {value:?}: {expected}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub value: String,
    pub expected: String,
}

impl ConfigError {
    pub fn invalid(variable: &'static str, value: &str, expected: impl Into<String>) -> Self {
        Self {
            variable,
            value: value.to_owned(),
            expected: expected.into(),
        }
    }
}

/// The CPU priority of the password-hashing threads (`GATEHOUSE_HASH_PRIORITY`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashPriority {
    /// The lowest (Linux's `SCHED_IDLE`): hashing takes only the CPU nothing else wants,
    /// so request handling comes first during a login flood. For a machine of its own.
    Idle,
    /// Like every other thread: for a machine shared with other busy programs (a
    /// database, say), where `Idle` hashing would get almost no CPU and logins would wait.
    Normal,
}

/// Where emails go (API.md §1 `EMAIL_BACKEND`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EmailBackend {
    Console,
    File(PathBuf),
    Smtp {
        url: String,
        /// `SMTP_CA_FILE`: PEM certificates trusted for the mail server besides the
        /// public roots (a relay with a certificate from a private CA).
        ca_file: Option<PathBuf>,
    },
}

/// Django's `ALLOWED_HOSTS`: exact names, `.example.com` for a domain and its
/// subdomains, `*` for any host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedHosts(Vec<String>);

impl AllowedHosts {
    pub fn parse(list: &str) -> Self {
        Self(
            list.split(',')
                .map(|h| h.trim().to_ascii_lowercase())
                .filter(|h| !h.is_empty())
                .collect(),
        )
    }

    pub fn any() -> Self {
        Self(vec!["*".to_owned()])
    }

    /// Whether a `Host` header value (with or without a port) is allowed, as Django's
    /// `get_host` decides it: first the shape (letters, digits, dots and hyphens, or a
    /// bracketed IPv6 address, and an optional port), then the allow-list. Without the
    /// shape check `evil.test/.example.com` would pass `.example.com` and end up in links.
    pub fn allows(&self, host_header: &str) -> bool {
        if !well_formed_host(host_header.trim()) {
            return false;
        }
        let host = strip_port(host_header.trim()).to_ascii_lowercase();
        let host = host.strip_suffix('.').unwrap_or(&host);
        if host.is_empty() {
            return false;
        }
        self.0.iter().any(|pattern| {
            pattern == "*"
                || pattern == host
                || pattern
                    .strip_prefix('.')
                    .is_some_and(|domain| host == domain || host.ends_with(&format!(".{domain}")))
        })
    }
}

/// Django's `host_validation_re`: `^([a-z0-9.-]+|\[[a-f0-9]*:[a-f0-9.:]+\])(:[0-9]+)?$`.
fn well_formed_host(host: &str) -> bool {
    let (name, port) = if host.starts_with('[') {
        match host.find(']') {
            Some(end) => host.split_at(end + 1),
            None => return false,
        }
    } else {
        host.split_at(host.find(':').unwrap_or(host.len()))
    };
    let port_ok = match port.strip_prefix(':') {
        None => port.is_empty(),
        Some(digits) => !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()),
    };
    let name_ok = match name.strip_prefix('[').and_then(|n| n.strip_suffix(']')) {
        Some(v6) => {
            v6.contains(':')
                && v6
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        }
        None => {
            !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
        }
    };
    port_ok && name_ok
}

/// A URL with its password replaced, for error messages.
pub fn redact_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut url) if url.password().is_some() => {
            let _ = url.set_password(Some("***"));
            url.to_string()
        }
        _ => raw.to_owned(),
    }
}

/// `example.com:8000` → `example.com`; `[::1]:8000` → `[::1]`.
fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return match host.find(']') {
            Some(end) => &host[..=end],
            None => host,
        };
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) => name,
        _ => host,
    }
}

/// A throttle rate in Django REST framework's notation: `30/min`, `1000/day` (the
/// period is read by its first letter, as DRF does: s, m, h or d).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub requests: u32,
    pub per_secs: u32,
}

impl Rate {
    pub const fn new(requests: u32, per_secs: u32) -> Self {
        Self { requests, per_secs }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        let (count, period) = raw.trim().split_once('/')?;
        let per_secs = match period.trim().chars().next()? {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return None,
        };
        let requests = count.trim().parse().ok().filter(|n| *n > 0)?;
        Some(Self { requests, per_secs })
    }
}

/// Per-client-address throttles of the unauthenticated endpoints (issue #5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttles {
    pub login: Rate,
    pub register: Rate,
    pub refresh: Rate,
    pub reset: Rate,
}

/// Limits on what one request may cost (issue #5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestLimits {
    /// The whole request, from its headers to the response (`GATEHOUSE_REQUEST_TIMEOUT`);
    /// past it the client gets 503.
    pub request_timeout: Duration,
    /// How long a client may take to send its request headers, and its body
    /// (`GATEHOUSE_CLIENT_TIMEOUT`): slow clients cannot hold connections open.
    pub client_timeout: Duration,
    /// All request headers together (`GATEHOUSE_MAX_HEADER_BYTES`); past it, 431.
    pub max_header_bytes: usize,
    /// How long a request waits for a free password-hashing slot before 503
    /// (`GATEHOUSE_HASH_WAIT`).
    pub hash_wait: Duration,
    /// Open connections at most (`GATEHOUSE_MAX_CONNECTIONS`); more wait to be accepted.
    pub max_connections: usize,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub database_url: String,
    /// `None`: generated once and kept in the database.
    pub secret_key: Option<SecretString>,
    pub bind: SocketAddr,
    pub access_token_lifetime: Duration,
    pub refresh_token_lifetime: Duration,
    pub password_reset_timeout: Duration,
    pub email_backend: EmailBackend,
    pub default_from_email: String,
    pub allowed_hosts: AllowedHosts,
    pub public_url: Option<String>,
    pub password_reset_url: String,
    pub password_min_length: usize,
    pub rate_limit: bool,
    /// How many password hashes may run at once (`GATEHOUSE_HASH_CONCURRENCY`, default:
    /// the cores; the hash threads run at the lowest priority, so requests still come
    /// first during a login flood: `auth::passwords`).
    pub hash_concurrency: usize,
    /// `GATEHOUSE_HASH_PRIORITY`: whether the hash threads yield to everything else.
    pub hash_priority: HashPriority,
    /// How many database connections each instance keeps (`DATABASE_POOL_SIZE`).
    pub database_pool_size: u32,
    pub throttles: Throttles,
    pub lockout: LockoutPolicy,
    pub limits: RequestLimits,
    /// Proxies whose `X-Forwarded-For` is believed (`TRUSTED_PROXIES`, CIDRs or addresses).
    pub trusted_proxies: Vec<IpNet>,
    /// Origins allowed cross-origin requests (`CORS_ALLOWED_ORIGINS`); empty: CORS off.
    pub cors_allowed_origins: Vec<String>,
}

pub const DEFAULT_DATABASE_URL: &str = "sqlite://gatehouse.sqlite3";
pub const DEFAULT_PASSWORD_RESET_URL: &str =
    "{base}/api/reset_password/confirm/?uid={uid}&token={token}";

impl Config {
    /// Reads the process environment (after `.env`, which `main` loads).
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
    }

    /// Builds the configuration from any source of variables; tests pass a map.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let duration = |name: &'static str, default: &str| -> Result<Duration, ConfigError> {
            let raw = get(name).unwrap_or_else(|| default.to_owned());
            humantime::parse_duration(raw.trim())
                .ok()
                .filter(|d| !d.is_zero())
                .ok_or_else(|| {
                    ConfigError::invalid(name, &raw, "expected a duration such as 300s, 5m or 1h")
                })
        };
        let number =
            |name: &'static str, default: usize, min: usize| -> Result<usize, ConfigError> {
                match get(name) {
                    None => Ok(default),
                    Some(raw) => raw
                        .trim()
                        .parse::<usize>()
                        .ok()
                        .filter(|n| *n >= min)
                        .ok_or_else(|| {
                            ConfigError::invalid(
                                name,
                                &raw,
                                format!("expected a whole number of at least {min}"),
                            )
                        }),
                }
            };

        let database_url = get("DATABASE_URL").unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned());
        match database_url.split_once("://").map(|(scheme, _)| scheme) {
            Some("sqlite" | "postgres" | "postgresql") => {}
            _ => {
                return Err(ConfigError::invalid(
                    "DATABASE_URL",
                    &redact_url(&database_url),
                    "expected sqlite://PATH or postgres://…",
                ))
            }
        }

        let bind_raw = get("GATEHOUSE_BIND").unwrap_or_else(|| "127.0.0.1:8000".to_owned());
        let bind = bind_raw.trim().parse().map_err(|_| {
            ConfigError::invalid(
                "GATEHOUSE_BIND",
                &bind_raw,
                "expected ADDRESS:PORT such as 127.0.0.1:8000",
            )
        })?;

        let email_backend = match get("EMAIL_BACKEND").as_deref().map(str::trim) {
            None | Some("console") => EmailBackend::Console,
            Some("file") => EmailBackend::File(PathBuf::from(
                get("EMAIL_FILE_PATH").unwrap_or_else(|| "sent_emails".to_owned()),
            )),
            Some("smtp") => match get("SMTP_URL") {
                // Any other scheme is refused, not taken for one of these; what `smtps`
                // and `tls=` mean is checked in `email::transport`.
                Some(url) if url.starts_with("smtp://") || url.starts_with("smtps://") => {
                    EmailBackend::Smtp {
                        url,
                        ca_file: get("SMTP_CA_FILE").map(PathBuf::from),
                    }
                }
                Some(url) => {
                    return Err(ConfigError::invalid(
                        "SMTP_URL",
                        &redact_url(&url),
                        "expected smtp[s]://[user:pass@]host[:port][?tls=starttls|tls]",
                    ))
                }
                None => {
                    return Err(ConfigError::invalid(
                        "SMTP_URL",
                        "",
                        "required when EMAIL_BACKEND=smtp",
                    ))
                }
            },
            Some(other) => {
                return Err(ConfigError::invalid(
                    "EMAIL_BACKEND",
                    other,
                    "expected console, file or smtp",
                ))
            }
        };

        let public_url = match get("PUBLIC_URL") {
            None => None,
            Some(url) if url.starts_with("http://") || url.starts_with("https://") => {
                Some(url.trim_end_matches('/').to_owned())
            }
            Some(url) => {
                return Err(ConfigError::invalid(
                    "PUBLIC_URL",
                    &url,
                    "expected an http:// or https:// URL",
                ))
            }
        };

        let rate_limit = match get("GATEHOUSE_RATE_LIMIT").as_deref().map(str::trim) {
            None | Some("on") => true,
            Some("off") => false,
            Some(other) => {
                return Err(ConfigError::invalid(
                    "GATEHOUSE_RATE_LIMIT",
                    other,
                    "expected on or off",
                ))
            }
        };

        let rate = |name: &'static str, default: Rate| -> Result<Rate, ConfigError> {
            match get(name) {
                None => Ok(default),
                Some(raw) => Rate::parse(&raw).ok_or_else(|| {
                    ConfigError::invalid(name, &raw, "expected a rate such as 30/min or 100/hour")
                }),
            }
        };
        let throttles = Throttles {
            login: rate("GATEHOUSE_THROTTLE_LOGIN", Rate::new(30, 60))?,
            register: rate("GATEHOUSE_THROTTLE_REGISTER", Rate::new(20, 3600))?,
            refresh: rate("GATEHOUSE_THROTTLE_REFRESH", Rate::new(120, 60))?,
            reset: rate("GATEHOUSE_THROTTLE_RESET", Rate::new(20, 3600))?,
        };
        let lockout = LockoutPolicy {
            per_client: number("GATEHOUSE_LOCKOUT_CLIENT_FAILURES", 5, 1)? as u32,
            per_account: number("GATEHOUSE_LOCKOUT_ACCOUNT_FAILURES", 20, 1)? as u32,
            window: duration("GATEHOUSE_LOCKOUT_WINDOW", "15m")?,
        };
        let limits = RequestLimits {
            request_timeout: duration("GATEHOUSE_REQUEST_TIMEOUT", "30s")?,
            client_timeout: duration("GATEHOUSE_CLIENT_TIMEOUT", "10s")?,
            max_header_bytes: number("GATEHOUSE_MAX_HEADER_BYTES", 16 * 1024, 1024)?,
            hash_wait: duration("GATEHOUSE_HASH_WAIT", "5s")?,
            max_connections: number("GATEHOUSE_MAX_CONNECTIONS", 1024, 1)?,
        };
        let trusted_proxies = get("TRUSTED_PROXIES")
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .map(|entry| {
                entry
                    .parse::<IpNet>()
                    .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| {
                        ConfigError::invalid(
                            "TRUSTED_PROXIES",
                            entry,
                            "expected addresses or CIDRs such as 10.0.0.0/8,127.0.0.1",
                        )
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let cors_allowed_origins = get("CORS_ALLOWED_ORIGINS")
            .unwrap_or_default()
            .split(',')
            .map(|origin| origin.trim().trim_end_matches('/').to_owned())
            .filter(|origin| !origin.is_empty())
            .map(|origin| {
                // django-cors-headers' rule: scheme://host[:port], nothing else.
                match url::Url::parse(&origin) {
                    Ok(url)
                        if matches!(url.scheme(), "http" | "https")
                            && url.host().is_some()
                            && url.path() == "/"
                            && url.query().is_none() =>
                    {
                        Ok(origin)
                    }
                    _ => Err(ConfigError::invalid(
                        "CORS_ALLOWED_ORIGINS",
                        &origin,
                        "expected origins such as https://app.example.com,http://localhost:3000",
                    )),
                }
            })
            .collect::<Result<Vec<_>, _>>()?;

        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        Ok(Self {
            database_url,
            secret_key: get("SECRET_KEY").map(SecretString::from),
            bind,
            access_token_lifetime: duration("ACCESS_TOKEN_LIFETIME", "5m")?,
            refresh_token_lifetime: duration("REFRESH_TOKEN_LIFETIME", "1d")?,
            password_reset_timeout: duration("PASSWORD_RESET_TIMEOUT", "1h")?,
            email_backend,
            default_from_email: get("DEFAULT_FROM_EMAIL")
                .unwrap_or_else(|| "webmaster@localhost".to_owned()),
            allowed_hosts: AllowedHosts::parse(
                &get("ALLOWED_HOSTS").unwrap_or_else(|| "localhost,127.0.0.1,[::1]".to_owned()),
            ),
            public_url,
            password_reset_url: get("PASSWORD_RESET_URL")
                .unwrap_or_else(|| DEFAULT_PASSWORD_RESET_URL.to_owned()),
            password_min_length: number("PASSWORD_MIN_LENGTH", 8, 1)?,
            rate_limit,
            hash_concurrency: number("GATEHOUSE_HASH_CONCURRENCY", cores, 1)?,
            hash_priority: match get("GATEHOUSE_HASH_PRIORITY").as_deref().map(str::trim) {
                None | Some("idle") => HashPriority::Idle,
                Some("normal") => HashPriority::Normal,
                Some(other) => {
                    return Err(ConfigError::invalid(
                        "GATEHOUSE_HASH_PRIORITY",
                        other,
                        "expected idle or normal",
                    ))
                }
            },
            database_pool_size: number("DATABASE_POOL_SIZE", 10, 1)? as u32,
            throttles,
            lockout,
            limits,
            trusted_proxies,
            cors_allowed_origins,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn defaults_are_the_contracts() {
        let c = config(&[]).unwrap();
        assert_eq!(c.database_url, "sqlite://gatehouse.sqlite3");
        assert_eq!(c.bind, "127.0.0.1:8000".parse().unwrap());
        assert_eq!(c.access_token_lifetime, Duration::from_secs(300));
        assert_eq!(c.refresh_token_lifetime, Duration::from_secs(86400));
        assert_eq!(c.email_backend, EmailBackend::Console);
        assert_eq!(c.password_min_length, 8);
    }

    #[test]
    fn a_bad_value_names_its_variable() {
        let err = config(&[("ACCESS_TOKEN_LIFETIME", "5x")])
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "invalid ACCESS_TOKEN_LIFETIME \"5x\": expected a duration such as 300s, 5m or 1h"
        );
        assert!(config(&[("EMAIL_BACKEND", "carrier-pigeon")])
            .unwrap_err()
            .to_string()
            .starts_with("invalid EMAIL_BACKEND"));
        assert!(config(&[("DATABASE_URL", "mysql://x")])
            .unwrap_err()
            .to_string()
            .starts_with("invalid DATABASE_URL"));
        assert!(config(&[("GATEHOUSE_BIND", "nope")])
            .unwrap_err()
            .to_string()
            .starts_with("invalid GATEHOUSE_BIND"));
    }

    #[test]
    fn rates_read_as_drf_reads_them() {
        assert_eq!(Rate::parse("30/min"), Some(Rate::new(30, 60)));
        assert_eq!(Rate::parse("5/s"), Some(Rate::new(5, 1)));
        assert_eq!(Rate::parse("100/hour"), Some(Rate::new(100, 3600)));
        assert_eq!(Rate::parse("1000/day"), Some(Rate::new(1000, 86_400)));
        for bad in ["", "30", "0/min", "x/min", "30/week", "-1/s"] {
            assert_eq!(Rate::parse(bad), None, "{bad}");
        }
        assert!(config(&[("GATEHOUSE_THROTTLE_LOGIN", "lots")])
            .unwrap_err()
            .to_string()
            .starts_with("invalid GATEHOUSE_THROTTLE_LOGIN"));
    }

    #[test]
    fn hash_priority_is_idle_normal_or_refused() {
        assert_eq!(config(&[]).unwrap().hash_priority, HashPriority::Idle);
        let normal = config(&[("GATEHOUSE_HASH_PRIORITY", "normal")]).unwrap();
        assert_eq!(normal.hash_priority, HashPriority::Normal);
        assert!(config(&[("GATEHOUSE_HASH_PRIORITY", "high")])
            .unwrap_err()
            .to_string()
            .starts_with("invalid GATEHOUSE_HASH_PRIORITY"));
    }

    #[test]
    fn proxies_and_origins_are_checked_at_start() {
        let c = config(&[
            ("TRUSTED_PROXIES", "10.0.0.0/8, 127.0.0.1,::1"),
            (
                "CORS_ALLOWED_ORIGINS",
                "https://app.example.com/,http://localhost:3000",
            ),
        ])
        .unwrap();
        assert_eq!(c.trusted_proxies.len(), 3);
        assert!(c.trusted_proxies[1].contains(&"127.0.0.1".parse::<IpAddr>().unwrap()));
        assert_eq!(
            c.cors_allowed_origins,
            ["https://app.example.com", "http://localhost:3000"]
        );
        assert!(config(&[("TRUSTED_PROXIES", "10.0.0.0/33")])
            .unwrap_err()
            .to_string()
            .starts_with("invalid TRUSTED_PROXIES"));
        assert!(
            config(&[("CORS_ALLOWED_ORIGINS", "https://app.example.com/path")])
                .unwrap_err()
                .to_string()
                .starts_with("invalid CORS_ALLOWED_ORIGINS")
        );
        let defaults = config(&[]).unwrap();
        assert!(defaults.trusted_proxies.is_empty() && defaults.cors_allowed_origins.is_empty());
    }

    #[test]
    fn allowed_hosts_match_as_django_does() {
        let hosts = AllowedHosts::parse("localhost,127.0.0.1,[::1],.example.com");
        for ok in [
            "localhost",
            "localhost:8000",
            "127.0.0.1:1234",
            "[::1]:8000",
            "example.com",
            "a.b.example.com",
            "EXAMPLE.com.",
        ] {
            assert!(hosts.allows(ok), "{ok}");
        }
        for bad in [
            "evil.test/.example.com",
            "evil.test?.example.com",
            "a.example.com:80x",
            "a b.example.com",
            "evil.com",
            "example.com.evil.com",
            "notexample.com",
            "",
            "[::2]:80",
        ] {
            assert!(!hosts.allows(bad), "{bad}");
        }
        assert!(AllowedHosts::parse("*").allows("anything:1"));
    }
}
