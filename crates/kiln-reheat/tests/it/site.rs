//! A tiny HTTP site for the tests: a paginated listing and a renderer, on 127.0.0.1:0, whose
//! behaviour (items, failures, a gate that holds renders) the test controls.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

/// How the renderer answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// 200 with `key@tag`.
    Ok,
    /// 500 every time.
    Fail500,
    /// Never answers.
    Hang,
}

/// How the listing's `next` goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Next {
    /// `page + 1` while items remain, then null.
    Normal,
    /// `page + 1` forever (empty pages past the items).
    Forever,
    /// `1 - page`: 0, 1, 0, 1...
    Cycle,
    /// `page + 1` forever, the pages past the items repeating the listing from its first
    /// page (new cursors, old keys).
    Repeat,
}

/// One listed item.
#[derive(Debug, Clone)]
pub(crate) struct Item {
    pub(crate) key: String,
    pub(crate) group: String,
    pub(crate) props: Value,
}

#[derive(Debug)]
pub(crate) struct SiteState {
    pub(crate) items: Vec<Item>,
    pub(crate) mode: Mode,
    /// Renders per key (every answered POST).
    pub(crate) renders: HashMap<String, u32>,
    /// Listing requests: (page, page_size).
    pub(crate) pages: Vec<(u64, u64)>,
    /// Appended to rendered bodies, to tell builds apart.
    pub(crate) tag: String,
    /// A raw listing body that replaces the real one.
    pub(crate) bad_listing: Option<String>,
    /// Close the gate once this many renders were answered (the crash test's "midway").
    pub(crate) hold_after: Option<u32>,
    /// Requests waiting at the gate now.
    pub(crate) waiting: u32,
    /// How `next` goes on.
    pub(crate) next: Next,
    /// Keys whose render is this many bytes: (key, size, streamed without a length).
    pub(crate) big: Vec<(String, usize, bool)>,
    /// Webhook deliveries received: (x-kiln-event, body).
    pub(crate) hooks: Vec<(String, Value)>,
    /// Answer this many webhook deliveries with a 500 first.
    pub(crate) hook_failures: u32,
    /// How long a render in `Mode::Ok` takes.
    pub(crate) render_delay: std::time::Duration,
    /// Renders in `Mode::Ok` under way now, and the most there were at once.
    pub(crate) in_flight: (u32, u32),
}

/// The site: its address and its state.
#[derive(Clone)]
pub(crate) struct Site {
    pub(crate) addr: SocketAddr,
    pub(crate) state: Arc<Mutex<SiteState>>,
    /// Renders wait while this is false.
    pub(crate) gate: Arc<tokio::sync::watch::Sender<bool>>,
}

pub(crate) fn items(n: usize, group: &str) -> Vec<Item> {
    (0..n)
        .map(|i| Item {
            key: format!("item-{i:04}"),
            group: group.to_string(),
            props: json!({ "n": i }),
        })
        .collect()
}

impl Site {
    pub(crate) async fn start(items: Vec<Item>) -> Site {
        let state = Arc::new(Mutex::new(SiteState {
            items,
            mode: Mode::Ok,
            renders: HashMap::new(),
            pages: Vec::new(),
            tag: "v1".into(),
            bad_listing: None,
            hold_after: None,
            waiting: 0,
            next: Next::Normal,
            big: Vec::new(),
            hooks: Vec::new(),
            hook_failures: 0,
            render_delay: std::time::Duration::ZERO,
            in_flight: (0, 0),
        }));
        let (gate, _) = tokio::sync::watch::channel(true);
        let site = Site {
            addr: "127.0.0.1:0".parse().unwrap(),
            state,
            gate: Arc::new(gate),
        };
        let app = Router::new()
            .route("/items", get(list))
            .route("/render", post(render))
            .route("/hook", post(hook))
            .with_state(site.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Site { addr, ..site }
    }

    pub(crate) fn listing_url(&self) -> String {
        format!("http://{}/items", self.addr)
    }

    pub(crate) fn hook_url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    pub(crate) fn render_url(&self) -> String {
        format!("http://{}/render", self.addr)
    }

    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut SiteState) -> R) -> R {
        f(&mut self.state.lock().unwrap())
    }

    pub(crate) fn total_renders(&self) -> u32 {
        self.with(|s| s.renders.values().sum())
    }
}

async fn list(State(site): State<Site>, Query(q): Query<HashMap<String, String>>) -> Response {
    let page: u64 = q.get("page").and_then(|p| p.parse().ok()).unwrap_or(0);
    let size: u64 = q
        .get("page_size")
        .and_then(|p| p.parse().ok())
        .unwrap_or(1000);
    let mut s = site.state.lock().unwrap();
    s.pages.push((page, size));
    if let Some(body) = &s.bad_listing {
        return ([(header::CONTENT_TYPE, "application/json")], body.clone()).into_response();
    }
    let pages = (s.items.len() as u64).div_ceil(size).max(1);
    let listed = match s.next {
        Next::Repeat => page % pages,
        _ => page,
    };
    let start = (listed * size) as usize;
    let items: Vec<Value> = s
        .items
        .iter()
        .skip(start)
        .take(size as usize)
        .map(|i| json!({"key": i.key, "group": i.group, "props": i.props}))
        .collect();
    let next = match s.next {
        Next::Normal => (start + (size as usize) < s.items.len()).then_some(page + 1),
        Next::Forever | Next::Repeat => Some(page + 1),
        Next::Cycle => Some(1 - page.min(1)),
    };
    axum::Json(json!({ "items": items, "next": next })).into_response()
}

async fn render(State(site): State<Site>, headers: HeaderMap, body: String) -> Response {
    let key = headers
        .get("x-kiln-key")
        .and_then(|v| v.to_str().ok())
        .map(|k| {
            percent_encoding::percent_decode_str(k)
                .decode_utf8_lossy()
                .into_owned()
        })
        .unwrap_or_default();
    let hold = site.with(|s| {
        s.waiting += 1;
        s.hold_after
            .is_some_and(|n| s.renders.values().sum::<u32>() >= n)
    });
    if hold {
        site.gate.send_replace(false);
    }
    let mut open = site.gate.subscribe();
    // Held while the gate is closed (the supersede, render-through and crash tests use it).
    let _ = open.wait_for(|o| *o).await;
    site.with(|s| s.waiting -= 1);
    let (mode, tag) = site.with(|s| (s.mode, s.tag.clone()));
    let big = site.with(|s| s.big.iter().find(|b| b.0 == key).cloned());
    if let Some((_, size, streamed)) = big {
        site.with(|s| *s.renders.entry(key.clone()).or_default() += 1);
        if !streamed {
            return vec![b'x'; size].into_response();
        }
        // Chunks of 64 KiB with no content-length: the reader must count as it goes.
        let chunks = (0..size.div_ceil(65536)).map(move |i| {
            let n = 65536.min(size - i * 65536);
            Ok::<_, std::convert::Infallible>(bytes::Bytes::from(vec![b'y'; n]))
        });
        return axum::body::Body::from_stream(futures::stream::iter(chunks)).into_response();
    }
    match mode {
        Mode::Hang => std::future::pending::<Response>().await,
        Mode::Fail500 => (StatusCode::INTERNAL_SERVER_ERROR, "boom").into_response(),
        Mode::Ok => {
            let delay = site.with(|s| {
                s.in_flight.0 += 1;
                s.in_flight.1 = s.in_flight.1.max(s.in_flight.0);
                s.render_delay
            });
            tokio::time::sleep(delay).await;
            site.with(|s| {
                s.in_flight.0 -= 1;
                *s.renders.entry(key.clone()).or_default() += 1
            });
            (
                [(header::CONTENT_TYPE, "text/plain")],
                format!("{key}@{tag} {body}"),
            )
                .into_response()
        }
    }
}

async fn hook(State(site): State<Site>, headers: HeaderMap, body: String) -> Response {
    let mut s = site.state.lock().unwrap();
    if s.hook_failures > 0 {
        s.hook_failures -= 1;
        return (StatusCode::INTERNAL_SERVER_ERROR, "not now").into_response();
    }
    let event = headers
        .get("x-kiln-event")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    s.hooks
        .push((event, serde_json::from_str(&body).unwrap_or(Value::Null)));
    StatusCode::NO_CONTENT.into_response()
}
