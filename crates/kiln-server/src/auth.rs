//! Who may call what: bearer tokens with scopes, the one route -> scope table
//! ([`ROUTES`]), and the middleware that checks both on every request.
//!
//! A token is known by its BLAKE3 hash only: the server hashes the presented token once and
//! looks the hash up in a map, so checking costs one hash of a few dozen bytes, no IO and no
//! allocation. Tokens are random 256-bit strings (`kiln token new`), so an unsalted fast hash
//! is enough; [`blake3::Hash`] compares in constant time.
//!
//! Without tokens ([`Auth::open`]) every route is open: the binary allows that on loopback
//! and Unix sockets only. Either way a `POST` must say `Content-Type: application/json` or
//! carry an `Authorization` header, so that no web page can send one cross-site: a browser
//! sends a cross-site `POST` without asking first only with a form or `text/plain` type,
//! and it asks (a CORS preflight, which kiln never grants) before any other method, any
//! other type or an `Authorization` header.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use kiln_core::Error;

use crate::AppState;
use crate::error::json_error;
use crate::hosts::Hosts;

/// What a token may do. Scopes are independent: `admin` does not imply `read`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Course metadata, files, render-cache reads, run status, metrics.
    Read,
    /// Ensures and the leases they answer with.
    Ensure,
    /// Render-cache writes.
    Write,
    /// Builds, run control, dead letters, gc.
    Admin,
}

impl Scope {
    /// Every scope, in the order the docs list them.
    pub const ALL: [Scope; 4] = [Scope::Read, Scope::Ensure, Scope::Write, Scope::Admin];

    /// The scope's name in the config and in errors.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Ensure => "ensure",
            Scope::Write => "write",
            Scope::Admin => "admin",
        }
    }

    fn bit(self) -> u8 {
        1 << self as u8
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Scope {
    type Err = Error;
    fn from_str(s: &str) -> Result<Scope, Error> {
        Scope::ALL
            .into_iter()
            .find(|sc| sc.as_str() == s)
            .ok_or_else(|| {
                Error::invalid(format!(
                    "unknown scope {s:?} (use read, ensure, write or admin)"
                ))
            })
    }
}

/// A set of scopes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Scopes(u8);

impl Scopes {
    /// Whether the set holds `scope`.
    pub fn contains(self, scope: Scope) -> bool {
        self.0 & scope.bit() != 0
    }
}

impl FromIterator<Scope> for Scopes {
    fn from_iter<I: IntoIterator<Item = Scope>>(iter: I) -> Scopes {
        Scopes(iter.into_iter().fold(0, |acc, s| acc | s.bit()))
    }
}

/// How a stored token hash is written: `blake3:` and 64 hex digits.
const HASH_PREFIX: &str = "blake3:";

/// The hash a token is stored and looked up by.
pub fn hash_token(token: &str) -> TokenHash {
    TokenHash(blake3::hash(token.as_bytes()))
}

/// A token's hash, as [`hash_token`] makes it; written `blake3:<hex>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenHash(blake3::Hash);

impl fmt::Display for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{HASH_PREFIX}{}", self.0.to_hex())
    }
}

impl std::str::FromStr for TokenHash {
    type Err = Error;
    fn from_str(s: &str) -> Result<TokenHash, Error> {
        let bad = || {
            Error::invalid(format!(
                "invalid token hash {s:?}: expected {HASH_PREFIX} and 64 hex digits (see `kiln token new`)"
            ))
        };
        let hex = s.strip_prefix(HASH_PREFIX).ok_or_else(bad)?;
        blake3::Hash::from_hex(hex)
            .map(TokenHash)
            .map_err(|_| bad())
    }
}

/// One configured token.
#[derive(Debug, Clone)]
pub struct Token {
    /// The token's name, for logs and errors (never the secret).
    pub name: String,
    /// What it may do.
    pub scopes: Scopes,
    /// Its hash.
    pub hash: TokenHash,
}

/// The tokens a server accepts; without any, every route is open. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Auth {
    tokens: Arc<HashMap<TokenHash, (Arc<str>, Scopes)>>,
}

impl Auth {
    /// No tokens: every route is open.
    pub fn open() -> Auth {
        Auth::default()
    }

    /// Accepts exactly `tokens`; two tokens with the same secret are refused, naming both.
    pub fn new(tokens: impl IntoIterator<Item = Token>) -> Result<Auth, Error> {
        let mut map = HashMap::new();
        for t in tokens {
            if let Some((other, _)) = map.get(&t.hash) {
                return Err(Error::invalid(format!(
                    "tokens {other:?} and {:?} have the same secret",
                    t.name
                )));
            }
            map.insert(t.hash, (Arc::from(t.name), t.scopes));
        }
        Ok(Auth {
            tokens: Arc::new(map),
        })
    }

    /// Whether no token is configured, so that every route is open.
    pub fn is_open(&self) -> bool {
        self.tokens.is_empty()
    }

    /// The name and scopes of the token `headers` present, if it is known.
    pub(crate) fn identify(&self, headers: &HeaderMap) -> Option<(&str, Scopes)> {
        let (name, scopes) = self.tokens.get(&hash_token(bearer(headers)?))?;
        Some((name, *scopes))
    }

    /// Admits a request with `headers` to a route that needs `access`, or says why not; the
    /// caller is the token it was admitted with (nobody on an open route or server).
    fn admit(&self, headers: &HeaderMap, access: Access) -> Result<Caller, Refusal> {
        let nobody = || Caller(Arc::from(""));
        let Access::Needs(scope) = access else {
            return Ok(nobody());
        };
        if self.is_open() {
            return Ok(nobody());
        }
        let presented = bearer(headers).ok_or(Refusal::NoToken)?;
        let (name, scopes) = self
            .tokens
            .get(&hash_token(presented))
            .ok_or(Refusal::UnknownToken)?;
        match scope {
            Some(s) if !scopes.contains(s) => Err(Refusal::LacksScope {
                token: name.to_string(),
                scope: s,
            }),
            _ => Ok(Caller(name.clone())),
        }
    }
}

/// The token of an `Authorization: Bearer <token>` header (the scheme in any case).
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// What a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, even when tokens are configured.
    Open,
    /// A known token with this scope; `None`: a known token with any scope (what an unknown
    /// route or method needs, so that a route missing from [`ROUTES`] is never open).
    Needs(Option<Scope>),
}

const fn needs(scope: Scope) -> Access {
    Access::Needs(Some(scope))
}

/// Every route and what it needs: the one place that says so. `HEAD` goes as `GET`.
pub const ROUTES: &[(Method, &str, Access)] = &[
    (Method::GET, "/healthz", Access::Open),
    (Method::GET, "/readyz", Access::Open),
    (Method::GET, "/v1/openapi.json", Access::Open),
    (Method::GET, "/metrics", needs(Scope::Read)),
    (Method::GET, "/v1/courses/{course}", needs(Scope::Read)),
    (
        Method::GET,
        "/v1/courses/{course}/files/{*path}",
        needs(Scope::Read),
    ),
    (
        Method::POST,
        "/v1/courses/{course}/ensure",
        needs(Scope::Ensure),
    ),
    (Method::POST, "/v1/leases/{id}/renew", needs(Scope::Ensure)),
    (Method::DELETE, "/v1/leases/{id}", needs(Scope::Ensure)),
    (Method::DELETE, "/v1/leases", needs(Scope::Ensure)),
    (Method::GET, "/v1/cache/{library}", needs(Scope::Read)),
    (
        Method::GET,
        "/v1/cache/{library}/{*key}",
        needs(Scope::Read),
    ),
    (
        Method::PUT,
        "/v1/cache/{library}/{*key}",
        needs(Scope::Write),
    ),
    (
        Method::DELETE,
        "/v1/cache/{library}/{*key}",
        needs(Scope::Write),
    ),
    // `.../{key}/render`: a catch-all is last in a route, so the suffix is the handler's.
    (
        Method::POST,
        "/v1/cache/{library}/{*key}",
        needs(Scope::Write),
    ),
    (
        Method::POST,
        "/v1/libraries/{library}/invalidate",
        needs(Scope::Write),
    ),
    (
        Method::POST,
        "/v1/libraries/{library}/builds",
        needs(Scope::Admin),
    ),
    (Method::GET, "/v1/runs/{run}", needs(Scope::Read)),
    (Method::GET, "/v1/runs", needs(Scope::Read)),
    (Method::GET, "/v1/runs/{run}/throughput", needs(Scope::Read)),
    (Method::GET, "/v1/libraries", needs(Scope::Read)),
    (
        Method::GET,
        "/v1/libraries/{library}/runs",
        needs(Scope::Read),
    ),
    (Method::GET, "/v1/queue", needs(Scope::Read)),
    (Method::GET, "/v1/dead-letters", needs(Scope::Read)),
    (
        Method::POST,
        "/v1/dead-letters/redrive",
        needs(Scope::Admin),
    ),
    (Method::GET, "/v1/courses", needs(Scope::Read)),
    (
        Method::GET,
        "/v1/courses/{course}/versions",
        needs(Scope::Read),
    ),
    (
        Method::GET,
        "/v1/courses/{course}/versions/{version}",
        needs(Scope::Read),
    ),
    (
        Method::GET,
        "/v1/courses/{course}/versions/{version}/files",
        needs(Scope::Read),
    ),
    (Method::GET, "/v1/server", needs(Scope::Read)),
    (Method::GET, "/v1/whoami", Access::Needs(None)),
    (Method::GET, "/ui", Access::Open),
    (Method::GET, "/ui/{*asset}", Access::Open),
    (Method::POST, "/v1/runs/{run}/cancel", needs(Scope::Admin)),
    (
        Method::POST,
        "/v1/libraries/{library}/pause",
        needs(Scope::Admin),
    ),
    (
        Method::POST,
        "/v1/libraries/{library}/resume",
        needs(Scope::Admin),
    ),
];

/// What `method` on the route template `route` needs.
pub fn access(method: &Method, route: Option<&str>) -> Access {
    let method = if method == Method::HEAD {
        &Method::GET
    } else {
        method
    };
    route
        .and_then(|r| {
            ROUTES
                .iter()
                .find(|(m, path, _)| m == method && *path == r)
                .map(|(_, _, a)| *a)
        })
        .unwrap_or(Access::Needs(None))
}

/// Why a request was refused.
#[derive(Debug)]
enum Refusal {
    NoToken,
    UnknownToken,
    LacksScope { token: String, scope: Scope },
    NotJson,
}

impl Refusal {
    fn into_response(self, method: &Method, route: &str) -> Response {
        let challenge = |extra: &str| {
            HeaderValue::from_str(&format!("Bearer realm=\"kiln\"{extra}"))
                .unwrap_or(HeaderValue::from_static("Bearer"))
        };
        let (status, code, message, www) = match self {
            Refusal::NoToken => (
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                format!("{method} {route} needs a bearer token (Authorization: Bearer <token>)"),
                Some(challenge("")),
            ),
            Refusal::UnknownToken => (
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "the bearer token is not known to this server".to_string(),
                Some(challenge(", error=\"invalid_token\"")),
            ),
            Refusal::LacksScope { token, scope } => (
                StatusCode::FORBIDDEN,
                "forbidden",
                format!("{method} {route} needs scope `{scope}`, which token {token:?} lacks"),
                Some(challenge(&format!(
                    ", error=\"insufficient_scope\", scope=\"{scope}\""
                ))),
            ),
            Refusal::NotJson => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                format!(
                    "{method} {route} needs Content-Type: application/json (or a bearer token), \
                     so that no web page can send it cross-site"
                ),
                None,
            ),
        };
        let mut resp = json_error(status, code, message);
        if let Some(v) = www {
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
        }
        resp
    }
}

/// Whether the request says its body is JSON (`application/json`, `application/*+json`).
fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|t| t.trim().to_ascii_lowercase())
        .is_some_and(|t| {
            t == "application/json" || (t.starts_with("application/") && t.ends_with("+json"))
        })
}

/// The name of the token a request was admitted with (empty without one): what its leases
/// are counted against.
#[derive(Debug, Clone)]
pub(crate) struct Caller(pub(crate) Arc<str>);

/// Middleware: refuses a request to a foreign `Host` or from a foreign `Origin`
/// ([`crate::hosts`]), one its token may not make, and a cross-site-sendable `POST`.
pub(crate) async fn check(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(MatchedPath::as_str);
    // The Host check is for servers without tokens: a rebinding page has no token.
    let hosts = if st.auth.is_open() {
        &st.hosts
    } else {
        &Hosts::Any
    };
    if let Err(r) = crate::hosts::check(hosts, req.method(), req.headers()) {
        return json_error(StatusCode::FORBIDDEN, r.code(), r.message());
    }
    let access = access(req.method(), route);
    let refused = |r: Refusal| {
        let route = route.unwrap_or(req.uri().path());
        r.into_response(req.method(), route)
    };
    let caller = match st.auth.admit(req.headers(), access) {
        Ok(caller) => caller,
        Err(r) => return refused(r),
    };
    if req.method() == Method::POST
        && !req.headers().contains_key(header::AUTHORIZATION)
        && !is_json(req.headers())
    {
        return refused(Refusal::NotJson);
    }
    // Who asks, for what they may hold (leases): the token's name, or nobody.
    let mut req = req;
    req.extensions_mut().insert(caller);
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_round_trip_and_bad_ones_are_named() {
        let h = hash_token("s3cret");
        assert_eq!(h.to_string().parse::<TokenHash>().unwrap(), h);
        for bad in ["", "blake3:", "sha256:00", "blake3:zz", &h.to_string()[1..]] {
            let err = bad.parse::<TokenHash>().unwrap_err().to_string();
            assert!(err.contains("invalid token hash"), "{bad}: {err}");
        }
    }

    #[test]
    fn bearer_reads_the_scheme_in_any_case() {
        let mut h = HeaderMap::new();
        for (v, want) in [
            ("Bearer abc", Some("abc")),
            ("bearer  abc ", Some("abc")),
            ("Basic abc", None),
            ("Bearer ", None),
            ("Bearerabc", None),
        ] {
            h.insert(header::AUTHORIZATION, HeaderValue::from_static(v));
            assert_eq!(bearer(&h), want, "{v}");
        }
    }

    #[test]
    fn json_types_are_recognised() {
        let mut h = HeaderMap::new();
        assert!(!is_json(&h));
        for (v, want) in [
            ("application/json", true),
            ("Application/JSON; charset=utf-8", true),
            ("application/merge-patch+json", true),
            ("text/plain", false),
            ("application/x-www-form-urlencoded", false),
            ("multipart/form-data; boundary=x", false),
        ] {
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(v));
            assert_eq!(is_json(&h), want, "{v}");
        }
    }

    #[test]
    fn an_unlisted_route_or_method_needs_a_token() {
        assert_eq!(access(&Method::GET, None), Access::Needs(None));
        assert_eq!(access(&Method::POST, Some("/healthz")), Access::Needs(None));
        assert_eq!(access(&Method::HEAD, Some("/healthz")), Access::Open);
    }
}
