//! Gates for suites that need a real service: `TEST_POSTGRES_URL`, `TEST_REDIS_URL`,
//! `TEST_S3_ENDPOINT`. Without the variable a test says it is skipped and returns; with
//! `KILN_REQUIRE_SERVICES=1` (as `.ci/run` sets) a missing variable fails the test instead.

/// The value of `var`, or `None` after printing that the test is skipped. Panics when
/// `KILN_REQUIRE_SERVICES=1`, so CI never skips a backend silently.
pub fn service_env(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Some(v),
        _ => {
            if std::env::var("KILN_REQUIRE_SERVICES").as_deref() == Ok("1") {
                panic!(
                    "{var} is not set but KILN_REQUIRE_SERVICES=1: this backend's suite must run"
                );
            }
            eprintln!("skipping: {var} is not set");
            None
        }
    }
}

/// Returns from the enclosing test unless the service variable is set; evaluates to its value.
#[macro_export]
macro_rules! skip_unless_env {
    ($var:literal) => {
        match $crate::services::service_env($var) {
            Some(v) => v,
            None => return,
        }
    };
}
