//! Producer chains: a listing is a chain of producer jobs, each naming the next cursor. A
//! listing whose `next` never ends, or cycles, would run forever, so each producer job
//! carries its page number (capped by the library's `max_pages`) and a mark for cycle
//! detection.
//!
//! Cycle detection is Brent's algorithm, carried in the payload so that it needs no state
//! beyond the job: the mark is the cursor of the last page whose number is a power of two,
//! and a next cursor equal to it (or to the current one) is a cycle. A cycle of length `λ`
//! that starts at page `μ` is reported by page `2·max(μ, λ) + λ` at the latest, with O(1)
//! payload; the render jobs of the repeated pages are deduplicated by key meanwhile.

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
}
