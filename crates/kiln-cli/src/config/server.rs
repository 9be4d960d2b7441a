//! `[server]` and `[[token]]`: where `kiln serve` listens and who may call it.
//!
//! A token's secret is never in the config file itself: it is given by its hash
//! (`hash = "blake3:..."`, as `kiln token new` prints it), or read when the server starts
//! from a file (`file = "/run/secrets/kiln-app"`, a mounted secret) or an environment
//! variable (`env = "KILN_APP_TOKEN"`), whose content is the token itself.

use std::path::PathBuf;

use kiln_server::auth::{Scope, Scopes, Token, TokenHash, hash_token};
use kiln_server::listen::ListenAddr;
use serde::Deserialize;

/// HTTP server settings.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ServerConfig {
    /// The listen address: `IP:PORT` or `unix:/path` (default `127.0.0.1:7878`).
    pub(crate) listen: Option<ListenAddr>,
    /// A Unix socket's file mode, octal (default `"0660"`).
    pub(crate) socket_mode: Option<String>,
    /// Names (without port) a server without tokens answers to besides IP addresses and
    /// `localhost` (default none): any other `Host` is refused, against DNS rebinding.
    #[serde(default)]
    pub(crate) hosts: Vec<HostName>,
    /// Serve a non-loopback address without tokens (default false: refused).
    #[serde(default)]
    pub(crate) allow_unauthenticated: bool,
    /// Time a client has to send a request's headers (default `10s`).
    #[serde(default, with = "super::opt_duration")]
    pub(crate) header_read_timeout: Option<std::time::Duration>,
    /// Time a connection may sit with no handler running and no byte moving (default `60s`).
    #[serde(default, with = "super::opt_duration")]
    pub(crate) idle_timeout: Option<std::time::Duration>,
    /// Connections served at once (default 1024).
    pub(crate) max_connections: Option<std::num::NonZeroUsize>,
}

/// A name of `server.hosts`: a DNS name without scheme, port or path.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "String")]
pub(crate) struct HostName(pub(crate) String);

impl TryFrom<String> for HostName {
    type Error = String;
    fn try_from(s: String) -> Result<HostName, String> {
        let ok = !s.is_empty()
            && s.len() <= 253
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
        if ok {
            Ok(HostName(s.to_ascii_lowercase()))
        } else {
            Err(format!(
                "invalid host name {s:?} in server.hosts: expected a name such as \
                 \"kiln.internal\" (letters, digits, '-' and '.', no scheme or port)"
            ))
        }
    }
}

/// One `[[token]]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawToken {
    name: String,
    scopes: Vec<String>,
    hash: Option<String>,
    file: Option<PathBuf>,
    env: Option<String>,
}

/// One `[[token]]`: a name, its scopes, and where its secret is.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "RawToken")]
pub(crate) struct TokenConfig {
    /// The name logs and errors use.
    pub(crate) name: String,
    /// What it may do.
    pub(crate) scopes: Scopes,
    /// Where the secret is.
    pub(crate) secret: Secret,
}

/// Where a token's secret is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Secret {
    /// Its hash, in the config.
    Hash(TokenHash),
    /// A file holding the token (surrounding whitespace ignored).
    File(PathBuf),
    /// An environment variable holding the token.
    Env(String),
}

impl TryFrom<RawToken> for TokenConfig {
    type Error = String;
    fn try_from(raw: RawToken) -> Result<TokenConfig, String> {
        if raw.name.trim().is_empty() {
            return Err("`name` is empty".into());
        }
        if raw.scopes.is_empty() {
            return Err(format!(
                "token {:?} has no scopes (use read, ensure, write, admin)",
                raw.name
            ));
        }
        let scopes = raw
            .scopes
            .iter()
            .map(|s| s.parse::<Scope>().map_err(|e| e.to_string()))
            .collect::<Result<Scopes, String>>()?;
        let secret = match (raw.hash, raw.file, raw.env) {
            (Some(h), None, None) => {
                Secret::Hash(h.parse().map_err(|e: kiln_core::Error| e.to_string())?)
            }
            (None, Some(f), None) => Secret::File(f),
            (None, None, Some(v)) => Secret::Env(v),
            _ => {
                return Err(format!(
                    "token {:?} needs exactly one of `hash`, `file` or `env`",
                    raw.name
                ));
            }
        };
        Ok(TokenConfig {
            name: raw.name,
            scopes,
            secret,
        })
    }
}

impl TokenConfig {
    /// The token as the server checks it: its secret read now, from the file or the
    /// environment `env` if that is where it is. The error names the token and the source.
    pub(crate) fn resolve(
        &self,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Token, kiln_core::Error> {
        let plain = |source: String, text: Option<String>| {
            let text = text.unwrap_or_default();
            let token = text.trim();
            if token.is_empty() {
                return Err(kiln_core::Error::invalid(format!(
                    "token {:?}: {source} is empty or missing",
                    self.name
                )));
            }
            Ok(hash_token(token))
        };
        let hash = match &self.secret {
            Secret::Hash(h) => *h,
            Secret::File(p) => {
                let text = std::fs::read_to_string(p).map_err(|e| {
                    kiln_core::Error::invalid(format!(
                        "token {:?}: reading {}: {e}",
                        self.name,
                        p.display()
                    ))
                })?;
                plain(format!("file {}", p.display()), Some(text))?
            }
            Secret::Env(var) => plain(format!("environment variable {var}"), env(var))?,
        };
        Ok(Token {
            name: self.name.clone(),
            scopes: self.scopes,
            hash,
        })
    }
}
