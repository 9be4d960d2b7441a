//! Integration tests of kiln-reheat: end-to-end reheats against a test HTTP site, bad
//! input, fencing, pruning, the zero-miss window, render-through, worker crashes, and the
//! injected clock under paused time.

/// Stamps out `NAME::mem` and `NAME::sqlite` tests that run `async fn NAME(Backends)`.
macro_rules! both {
    ($name:ident) => {
        mod $name {
            #[tokio::test]
            async fn mem() {
                super::$name(crate::support::Backends::mem()).await
            }
            #[tokio::test]
            async fn sqlite() {
                super::$name(crate::support::Backends::sqlite().await).await
            }
        }
    };
}

/// Stamps out `NAME::mem`, `NAME::sqlite` and `NAME::postgres` tests that run
/// `async fn NAME(Backends)`; the last is skipped, saying so, without `TEST_POSTGRES_URL`.
macro_rules! each_backend {
    ($name:ident) => {
        mod $name {
            #[tokio::test]
            async fn mem() {
                super::$name(crate::support::Backends::mem()).await
            }
            #[tokio::test]
            async fn sqlite() {
                super::$name(crate::support::Backends::sqlite().await).await
            }
            #[tokio::test]
            async fn postgres() {
                if let Some(b) = crate::support::Backends::postgres().await {
                    super::$name(b).await
                }
            }
        }
    };
}

mod bad_input;
mod clock;
mod crash;
mod faulty;
mod limits;
mod listing_faults;
mod outage;
mod reheat;
mod render_cap;
mod site;
mod support;
mod worker;
