//! Which `Host` and `Origin` a server answers: the defence against DNS rebinding and
//! against requests from pages that are not kiln's own.
//!
//! **DNS rebinding.** A page on `http://attacker.example:7878` whose name the attacker then
//! points at 127.0.0.1 is same-origin with a kiln on loopback: the browser sends its
//! requests, `Host: attacker.example:7878` included, and reads the answers. Tokens stop it
//! (the page has none), so the check applies to a server without tokens on TCP: it answers
//! only a `Host` that is an IP address, `localhost`, or a name of `[server] hosts`. An IP
//! address is safe whatever it is: a page whose origin is an IP address is served by that
//! address, so no name was rebound. A Unix socket is out of a browser's reach, and its
//! clients send whatever `Host` they like, so it is not checked.
//!
//! **Origins.** A request that changes state (any method but `GET`, `HEAD`, `OPTIONS`) and
//! carries an `Origin` is refused unless the origin is the server's own (the origin's host
//! and port are the request's `Host`): a page elsewhere, or a sandboxed document (a course
//! file, a render-cache entry: origin `null`), cannot act on kiln even where the browser
//! would send the request without asking first. Programs send no `Origin` and are not
//! affected.

use std::sync::Arc;

use axum::http::{HeaderMap, Method, header};

/// The names a server without tokens answers to, besides IP addresses and `localhost`.
#[derive(Debug, Clone)]
pub enum Hosts {
    /// Any `Host` (a Unix socket, or a server with tokens).
    Any,
    /// IP addresses, `localhost` and these names (lowercase, without port).
    Named(Arc<[String]>),
}

impl Default for Hosts {
    /// IP addresses and `localhost` only.
    fn default() -> Hosts {
        Hosts::Named(Arc::from([]))
    }
}

impl Hosts {
    /// IP addresses, `localhost` and `names` (a name as a browser writes it, without port;
    /// compared case-insensitively).
    pub fn named(names: impl IntoIterator<Item = String>) -> Hosts {
        Hosts::Named(names.into_iter().map(|n| n.to_ascii_lowercase()).collect())
    }

    /// Whether a request with `Host: host` (host and optional port) may be answered.
    fn admits(&self, host: &str) -> bool {
        let Hosts::Named(names) = self else {
            return true;
        };
        let name = host_name(host).to_ascii_lowercase();
        let name = name.strip_suffix('.').unwrap_or(&name);
        name == "localhost" || is_ip(name) || names.iter().any(|n| n == name)
    }
}

/// Why a request was refused by [`check`].
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refused {
    /// A `Host` that is not one of the server's names.
    Host(String),
    /// A state-changing request from another origin.
    Origin(String),
}

impl Refused {
    /// The error's kind in the JSON body.
    pub(crate) fn code(&self) -> &'static str {
        match self {
            Refused::Host(_) => "host_not_allowed",
            Refused::Origin(_) => "origin_not_allowed",
        }
    }

    /// A message naming the culprit and the way out.
    pub(crate) fn message(&self) -> String {
        match self {
            Refused::Host(h) => format!(
                "Host {h:?} is not a name of this server: without tokens kiln answers only IP \
                 addresses, localhost and the names in server.hosts (so that no web page can \
                 reach it by DNS rebinding); add the name to server.hosts or configure tokens"
            ),
            Refused::Origin(o) => format!(
                "a request from origin {o:?} may not change anything here: only kiln's own \
                 pages (the same origin) and programs (no Origin header) may"
            ),
        }
    }
}

/// Checks a request's `Host` (by `hosts`) and, when it changes state, its `Origin`.
pub(crate) fn check(hosts: &Hosts, method: &Method, headers: &HeaderMap) -> Result<(), Refused> {
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    if let Some(h) = host
        && !hosts.admits(h)
    {
        return Err(Refused::Host(h.to_string()));
    }
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return Ok(());
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let origin = String::from_utf8_lossy(origin.as_bytes()).into_owned();
    // Same origin: the origin's host and port are the request's `Host`.
    let same = origin
        .split_once("://")
        .is_some_and(|(_, authority)| host.is_some_and(|h| authority.eq_ignore_ascii_case(h)));
    if same {
        Ok(())
    } else {
        Err(Refused::Origin(origin))
    }
}

/// The name of `host[:port]` (`[v6]` keeps its brackets off).
fn host_name(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split_once(']').map_or(rest, |(ip, _)| ip);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

fn is_ip(name: &str) -> bool {
    name.parse::<std::net::IpAddr>().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(host: Option<&str>, origin: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(v) = host {
            h.insert(header::HOST, HeaderValue::from_str(v).unwrap());
        }
        if let Some(v) = origin {
            h.insert(header::ORIGIN, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn without_tokens_only_addresses_localhost_and_configured_names_are_answered() {
        let hosts = Hosts::named(["Kiln.Internal".to_string()]);
        for ok in [
            "127.0.0.1:7878",
            "127.0.0.1",
            "[::1]:7878",
            "10.1.2.3:80",
            "localhost:7878",
            "LOCALHOST",
            "localhost.:7878",
            "kiln.internal:7878",
            "KILN.INTERNAL",
        ] {
            assert_eq!(
                check(&hosts, &Method::GET, &headers(Some(ok), None)),
                Ok(()),
                "{ok}"
            );
        }
        for bad in [
            "attacker.example:7878",
            "localhost.attacker.example",
            "127.0.0.1.nip.io:7878",
            "kiln.internal.attacker.example",
        ] {
            let err = check(&hosts, &Method::GET, &headers(Some(bad), None)).unwrap_err();
            assert_eq!(err, Refused::Host(bad.to_string()));
            assert!(err.message().contains(bad), "{}", err.message());
        }
        // No Host (HTTP/1.0, a program) and `Any` are answered.
        assert_eq!(check(&hosts, &Method::GET, &headers(None, None)), Ok(()));
        let any = headers(Some("attacker.example"), None);
        assert_eq!(check(&Hosts::Any, &Method::GET, &any), Ok(()));
    }

    #[test]
    fn a_state_change_from_another_origin_is_refused() {
        let host = Some("127.0.0.1:7878");
        for (method, origin, ok) in [
            (Method::POST, Some("http://127.0.0.1:7878"), true),
            (Method::POST, None, true),
            (Method::GET, Some("http://evil.example"), true),
            (Method::POST, Some("http://evil.example"), false),
            (Method::POST, Some("null"), false),
            (Method::PUT, Some("http://127.0.0.1:7879"), false),
            (Method::DELETE, Some("http://localhost:7878"), false),
        ] {
            let r = check(&Hosts::Any, &method, &headers(host, origin));
            assert_eq!(r.is_ok(), ok, "{method} from {origin:?}: {r:?}");
        }
    }
}
