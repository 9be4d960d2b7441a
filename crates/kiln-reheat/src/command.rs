//! The declarative command renderer: props as JSON on stdin, the entry on stdout.
//!
//! The key and library are in `KILN_KEY` and `KILN_LIBRARY`. Exit 0 is success; exit 75
//! (`EX_TEMPFAIL`) and a timeout are transient; any other exit is permanent and the dead
//! letter quotes the end of stderr.

use std::process::Stdio;
use std::time::Duration;

use bytes::Bytes;
use kiln_core::ids::LibraryName;
use serde_json::Value;
use tokio::io::AsyncWriteExt;

use crate::body::{self, ReadError};
use crate::handler::{RenderError, Rendered};

/// The exit status a command uses to ask for a retry (`EX_TEMPFAIL`).
pub const EXIT_TEMPFAIL: i32 = 75;

/// Renders by running a program.
#[derive(Debug, Clone)]
pub struct CommandRenderer {
    library: LibraryName,
    argv: Vec<String>,
    content_type: String,
    timeout: Duration,
    max_bytes: usize,
}

/// How much of a failed command's stderr the dead letter keeps (the end).
const STDERR_TAIL_BYTES: usize = 4096;

impl CommandRenderer {
    /// A renderer running `argv` (non-empty; checked by the config) for `library`, whose
    /// output may be at most `max_bytes` long.
    pub fn new(
        library: LibraryName,
        argv: Vec<String>,
        content_type: String,
        timeout: Duration,
        max_bytes: usize,
    ) -> Self {
        CommandRenderer {
            library,
            argv,
            content_type,
            timeout,
            max_bytes,
        }
    }

    /// Renders `key`.
    pub async fn render(&self, key: &str, props: &Value) -> Result<Rendered, RenderError> {
        let Some((prog, args)) = self.argv.split_first() else {
            return Err(RenderError::Fail("renderer.command is empty".into()));
        };
        let mut child = tokio::process::Command::new(prog)
            .args(args)
            .env("KILN_KEY", key)
            .env("KILN_LIBRARY", self.library.as_str())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // A timed-out render drops the child: kill it rather than leak it.
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                RenderError::Fail(format!("renderer command {prog:?} cannot start: {e}"))
            })?;
        let input = serde_json::to_vec(props).unwrap_or_default();
        let mut stdin = child.stdin.take();
        let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
        let cap = self.max_bytes;
        // Input, output and errors at once: a program may write before it has read all its
        // input. Past the cap, stdout is abandoned and the child is killed (on drop).
        let run = async move {
            let feed = async {
                if let Some(stdin) = stdin.as_mut() {
                    // A program that exits without reading its input is not an error here.
                    let _ = stdin.write_all(&input).await;
                }
                drop(stdin);
            };
            let out = async {
                match stdout {
                    Some(s) => body::stream(s, cap).await,
                    None => Ok(Vec::new()),
                }
            };
            let err = async {
                match stderr {
                    Some(s) => body::tail(s, STDERR_TAIL_BYTES).await,
                    None => Vec::new(),
                }
            };
            let ((), out, err) = tokio::join!(feed, out, err);
            let out = out?;
            let status = child.wait().await.map_err(ReadError::Io)?;
            Ok::<_, ReadError<std::io::Error>>((status, out, err))
        };
        let (status, stdout, stderr) = match tokio::time::timeout(self.timeout, run).await {
            Err(_) => {
                return Err(RenderError::Retry {
                    after: None,
                    reason: format!(
                        "renderer command {prog:?} timed out after {:?} for {key:?}",
                        self.timeout
                    ),
                });
            }
            Ok(Err(ReadError::TooLarge(t))) => {
                return Err(RenderError::Fail(format!(
                    "renderer command {prog:?} wrote more than {} bytes for {key:?} \
                     (max_render_bytes)",
                    t.cap
                )));
            }
            Ok(Err(ReadError::Io(e))) => {
                return Err(RenderError::Retry {
                    after: None,
                    reason: format!("renderer command {prog:?} for {key:?}: {e}"),
                });
            }
            Ok(Ok(out)) => out,
        };
        if status.success() {
            return Ok(Rendered::new(
                Bytes::from(stdout),
                self.content_type.clone(),
            ));
        }
        let stderr = String::from_utf8_lossy(&stderr);
        let tail: String = stderr
            .trim_end()
            .chars()
            .rev()
            .take(200)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        let reason = format!("renderer command {prog:?} {status} for {key:?}: {tail}");
        if status.code() == Some(EXIT_TEMPFAIL) {
            Err(RenderError::Retry {
                after: None,
                reason,
            })
        } else {
            Err(RenderError::Fail(reason))
        }
    }
}
