//! Cron schedules: a library's `schedule` starts a build at each of its ticks, once across
//! every worker that runs it (the ledger's `claim_tick` picks the one that starts it).

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use croner::Cron;
use croner::parser::{CronParser, Seconds};
use kiln_core::ledger::Run;
use kiln_core::time::Timestamp;

use crate::reheat::{Reheat, StartOptions};

/// How late a tick may still be started: a worker that was busy, restarting or polling
/// when the tick passed starts it up to this long after; an older tick is skipped (no
/// catch-up of ticks missed while no worker ran, as with cron).
pub const GRACE: Duration = Duration::from_secs(60);

/// How often workers look for a due tick.
pub const POLL: Duration = Duration::from_secs(1);

/// A parsed cron expression: five fields (minute to weekday) or six with seconds first,
/// read in UTC; `@hourly`, `@daily` and the like too.
#[derive(Debug, Clone)]
pub struct Schedule {
    text: String,
    cron: Cron,
}

impl PartialEq for Schedule {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}
impl Eq for Schedule {}

impl Schedule {
    /// Parses `text`; the error says what is wrong with it.
    pub fn parse(text: &str) -> std::result::Result<Schedule, String> {
        let cron = CronParser::builder()
            .seconds(Seconds::Optional)
            .build()
            .parse(text)
            .map_err(|e| format!("invalid cron expression {text:?}: {e}"))?;
        Ok(Schedule {
            text: text.to_string(),
            cron,
        })
    }

    /// The expression as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The newest tick at or before `now` that is at most [`GRACE`] old.
    pub fn due(&self, now: Timestamp) -> Option<Timestamp> {
        // Whole seconds: a tick is a second's start, however far into it `now` is.
        let now_utc = DateTime::<Utc>::from_timestamp(now.0.div_euclid(1000), 0)?;
        let tick = self.cron.find_previous_occurrence(&now_utc, true).ok()?;
        let tick = Timestamp(tick.timestamp_millis());
        (tick.0 >= now.minus(GRACE).0).then_some(tick)
    }
}

/// The build label of the tick at `tick`: `schedule-2026-12-02T18:00:00Z`.
pub fn build_label(tick: Timestamp) -> String {
    let at = DateTime::<Utc>::from_timestamp_millis(tick.0).unwrap_or_default();
    format!("schedule-{}", at.to_rfc3339_opts(SecondsFormat::Secs, true))
}

impl Reheat {
    /// Starts the build of every scheduled library whose tick is due and that this caller
    /// claimed first; returns the runs it started. A library whose start fails is logged
    /// and skipped (its tick is spent: the next tick tries again).
    pub async fn run_schedules(&self) -> Vec<Run> {
        let now = self.clock().now();
        let mut started = Vec::new();
        for lib in self.libraries().iter() {
            let Some(tick) = lib.settings.schedule.as_ref().and_then(|s| s.due(now)) else {
                continue;
            };
            match self.ledger().claim_tick(&lib.name, tick).await {
                Ok(true) => {}
                Ok(false) => continue,
                Err(e) => {
                    tracing::warn!(library = %lib.name, error = %e, "claiming a scheduled tick failed");
                    continue;
                }
            }
            let opts = StartOptions {
                build: Some(build_label(tick)),
                group: None,
            };
            match self.start(lib.name.as_str(), opts).await {
                Ok(run) => {
                    tracing::info!(library = %lib.name, run = %run.id, build = %run.build, "started a scheduled build");
                    started.push(run);
                }
                Err(e) => {
                    tracing::warn!(library = %lib.name, error = %e, "a scheduled build failed to start")
                }
            }
        }
        started
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tick_is_due_for_a_minute_then_skipped() {
        let s = Schedule::parse("0 * * * *").unwrap();
        // 2026-12-02T18:00:00Z
        let hour = Timestamp(1_796_234_400_000);
        assert_eq!(s.due(hour), Some(hour));
        assert_eq!(s.due(hour.plus(Duration::from_secs(59))), Some(hour));
        assert_eq!(s.due(hour.plus(Duration::from_secs(61))), None);
        assert_eq!(build_label(hour), "schedule-2026-12-02T18:00:00Z");
        let secs = Schedule::parse("*/10 * * * * *").unwrap();
        assert_eq!(
            secs.due(hour.plus(Duration::from_millis(12_500))),
            Some(hour.plus(Duration::from_secs(10)))
        );
    }

    #[test]
    fn a_bad_expression_is_named() {
        let e = Schedule::parse("61 * * * *").unwrap_err();
        assert!(e.contains("\"61 * * * *\""), "{e}");
        assert!(Schedule::parse("@daily").is_ok());
    }
}
