//! Producer chains: a listing is a chain of producer jobs, each naming the next cursor. A
//! listing whose `next` never ends, or cycles, would run forever, so each producer job
//! carries its page number (capped by the library's `max_pages`), a mark for cycle
//! detection, and how many pages in a row before it added no new key to the run (capped
//! by `max_idle_pages`: a listing whose new cursors keep listing old items).
//!
//! Cycle detection is Brent's algorithm, carried in the payload so that it needs no state
//! beyond the job: the mark is the cursor of the last page whose number is a power of two,
//! and a next cursor equal to it (or to the current one) is a cycle. A cycle of length `λ`
//! that starts at page `μ` is reported by page `2·max(μ, λ) + λ` at the latest, with O(1)
//! payload; the render jobs of the repeated pages are deduplicated by key meanwhile.
//!
//! Idle pages: whether a page added a key is what the queue's idempotent enqueue says of its
//! render jobs (`Enqueued::created`), so it holds across workers: the run's keys are the
//! queue's, and the count travels in the payload. A page adds a key when at least one of
//! its render jobs was created; a page that lists nothing counts as idle too, except in a
//! group run (where items of other groups are filtered out, and a listing sorted by group
//! may have many pages without one of the run's). A page delivered again after its render
//! jobs were enqueued (a crash, a lost ack) counts as idle once; it takes `max_idle_pages`
//! such pages in a row to stop a listing that does add keys.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A cursor of an earlier page of the listing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mark {
    /// Its page number.
    pub page: u64,
    /// The cursor.
    pub cursor: Value,
}

/// Where a producer job is in its listing.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Position<'a> {
    /// Its page number.
    pub(crate) page: u64,
    /// Its cursor.
    pub(crate) cursor: &'a Value,
    /// Its mark.
    pub(crate) mark: Option<&'a Mark>,
    /// Pages in a row before it that added no new key to the run.
    pub(crate) idle: u64,
}

/// The page number and mark of a producer job for `next`, asked for by the job at `parent`
/// (`None`: the new-build job), or why the listing may not go on.
pub(crate) fn follow(
    parent: Option<Position<'_>>,
    next: &Value,
    max_pages: u64,
) -> Result<(u64, Mark), String> {
    let Some(p) = parent else {
        let mark = Mark {
            page: 0,
            cursor: next.clone(),
        };
        return Ok((0, mark));
    };
    let page = p.page + 1;
    if page >= max_pages {
        return Err(format!(
            "the listing has more than {max_pages} pages (max_pages): page {} asked for \
             cursor {next} after it",
            p.page
        ));
    }
    if next == p.cursor {
        return Err(format!(
            "the listing cycles: page {} asked for its own cursor {next} as the next",
            p.page
        ));
    }
    if let Some(m) = p.mark.filter(|m| &m.cursor == next) {
        return Err(format!(
            "the listing cycles: cursor {next} comes again at page {page}, after page {}",
            m.page
        ));
    }
    let mark = match p.mark {
        Some(m) if !page.is_power_of_two() => m.clone(),
        _ => Mark {
            page,
            cursor: next.clone(),
        },
    };
    Ok((page, mark))
}

/// What one page of a listing added to its run: how many render items it listed and how
/// many of their jobs its enqueue created.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Added {
    /// Render items the page listed.
    pub(crate) listed: usize,
    /// Of their jobs, those the queue created (the rest were the run's already).
    pub(crate) created: usize,
    /// Whether the run is a group run (its listing filtered to one group).
    pub(crate) group_run: bool,
}

/// How many pages in a row, ending with the page at `at`, added no new key to the run,
/// once the page `added` what it did (see the module docs); or, when that reaches
/// `max_idle_pages`, why the listing may not go on.
pub(crate) fn idle_after(
    at: Position<'_>,
    added: Added,
    max_idle_pages: u64,
) -> Result<u64, String> {
    if added.created > 0 {
        return Ok(0);
    }
    if added.listed == 0 && added.group_run {
        return Ok(at.idle);
    }
    let idle = at.idle + 1;
    if idle >= max_idle_pages {
        return Err(format!(
            "the listing goes on without new items: {idle} pages in a row added no new key \
             (max_idle_pages), from page {} to page {} (cursor {})",
            at.page + 1 - idle.min(at.page + 1),
            at.page,
            at.cursor
        ));
    }
    Ok(idle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Follows `next` from cursor 0 until it fails; returns the page it failed at and why.
    fn run(next: impl Fn(u64) -> u64, max_pages: u64) -> (u64, String) {
        let (mut page, mut mark) = follow(None, &json!(0), max_pages).unwrap();
        let mut cursor = json!(0);
        for _ in 0..10_000 {
            let n = json!(next(cursor.as_u64().unwrap()));
            let pos = Position {
                page,
                cursor: &cursor,
                mark: Some(&mark),
                idle: 0,
            };
            match follow(Some(pos), &n, max_pages) {
                Ok((p, m)) => (page, mark, cursor) = (p, m, n),
                Err(e) => return (page, e),
            }
        }
        panic!("never stopped");
    }

    #[test]
    fn cycles_are_found_within_a_few_laps() {
        let (page, why) = run(|c| 1 - c, 1000);
        assert!(why.contains("cycles") && page <= 6, "{page}: {why}");
        for (start, len) in [(0u64, 1u64), (3, 2), (10, 7), (1, 50), (40, 3)] {
            let (page, why) = run(|c| if c + 1 < start + len { c + 1 } else { start }, 1000);
            assert!(why.contains("cycles"), "{start}/{len}: {why}");
            assert!(
                page <= 2 * start.max(len) + len + 1,
                "{start}/{len}: page {page}"
            );
        }
    }

    #[test]
    fn an_endless_listing_stops_at_max_pages() {
        let (page, why) = run(|c| c + 1, 100);
        assert_eq!(page, 99);
        assert!(why.contains("more than 100 pages (max_pages)"), "{why}");
    }

    #[test]
    fn idle_pages_count_until_a_page_adds_a_key() {
        let cursor = json!(7);
        let at = |page, idle| Position {
            page,
            cursor: &cursor,
            mark: None,
            idle,
        };
        let added = |listed, created, group_run| Added {
            listed,
            created,
            group_run,
        };
        assert_eq!(idle_after(at(7, 3), added(10, 1, false), 5), Ok(0));
        assert_eq!(idle_after(at(7, 3), added(10, 0, false), 5), Ok(4));
        assert_eq!(idle_after(at(7, 3), added(0, 0, false), 5), Ok(4));
        // A group run's page may have been emptied by the group filter: it neither adds nor
        // counts.
        assert_eq!(idle_after(at(7, 3), added(0, 0, true), 5), Ok(3));
        assert_eq!(idle_after(at(7, 3), added(4, 0, true), 5), Ok(4));
        let why = idle_after(at(7, 4), added(10, 0, false), 5).unwrap_err();
        assert_eq!(
            why,
            "the listing goes on without new items: 5 pages in a row added no new key \
             (max_idle_pages), from page 3 to page 7 (cursor 7)"
        );
        assert!(idle_after(at(0, 0), added(0, 0, false), 1).is_err());
    }
}
