//! `kiln verify`'s part for the published view: every version's pointer and root, the
//! segments they name, and the head, against what the catalog says; and the repair, which
//! rewrites whatever differs.

use std::collections::HashSet;
use std::sync::Arc;

use kiln_core::catalog::Catalog;
use kiln_core::ids::{CourseId, VersionId};
use kiln_core::{Error, Result};
use object_store::ObjectStore;

use crate::format::Digest;
use crate::keys::{self, Kind};
use crate::writer::{self, Fresh, Written};

/// One thing the published view gets wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The course.
    pub course: CourseId,
    /// The version (`None`: the head's entry for the course).
    pub version: Option<VersionId>,
    /// What is wrong.
    pub what: String,
}

/// What [`check`] found.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Versions checked.
    pub versions: u64,
    /// Distinct segments checked present.
    pub segments: u64,
    /// What is wrong.
    pub problems: Vec<Problem>,
    /// What a repair wrote.
    pub written: Written,
}

/// Checks every version of every course (`only`: those courses) and the head; with
/// `repair`, rewrites what is wrong (as `owner` of the head lease) and reports what it
/// found before.
pub async fn check(
    catalog: &dyn Catalog,
    store: &Arc<dyn ObjectStore>,
    only: Option<&[CourseId]>,
    repair: Option<&str>,
) -> Result<Report> {
    let mut report = Report::default();
    let mut seen: HashSet<Digest> = HashSet::new();
    let mut fresh = Vec::new();
    let courses = match only {
        Some(c) => c.to_vec(),
        None => catalog.courses().await?,
    };
    let head = writer::read_head(&**store).await?;
    for course in &courses {
        for info in catalog.versions(course).await? {
            report.versions += 1;
            let version = &info.version;
            let manifest = catalog.manifest(course, version).await?;
            let want = writer::root_of(catalog, &**store, course, version, &manifest).await?;
            let mut bad = Vec::new();
            match writer::read_pointer(&**store, course, version).await {
                Ok(r) if r == want => {}
                Ok(r) => bad.push(format!(
                    "its pointer names root {r}, the catalog makes {want}"
                )),
                Err(Error::NotFound { .. }) => bad.push("it has no pointer".to_string()),
                Err(e) => bad.push(format!("its pointer is unreadable: {e}")),
            }
            match writer::read_root(&**store, &want).await {
                Ok(root) => {
                    for s in root.segments {
                        for (kind, id) in [(Kind::Segment, s.manifest), (Kind::Tocs, s.tocs)] {
                            if !seen.insert(id) {
                                continue;
                            }
                            report.segments += 1;
                            let key = keys::object(kind, &id);
                            if let Err(e) = present(&**store, &key).await {
                                bad.push(format!("{key}: {e}"));
                            }
                        }
                    }
                }
                Err(e) => bad.push(format!("root {want}: {e}")),
            }
            if info.current {
                match head.course(course) {
                    Some((v, r)) if &v == version && r == want => {}
                    Some((v, r)) => report.problems.push(Problem {
                        course: course.clone(),
                        version: None,
                        what: format!("the head names version {v} (root {r}), the catalog {version} (root {want})"),
                    }),
                    None => report.problems.push(Problem {
                        course: course.clone(),
                        version: None,
                        what: "the head does not name the course".into(),
                    }),
                }
            }
            let broken = !bad.is_empty();
            report.problems.extend(bad.into_iter().map(|what| Problem {
                course: course.clone(),
                version: Some(version.clone()),
                what,
            }));
            if let Some(_owner) = repair {
                if broken {
                    let p = writer::publish_version(
                        catalog, store, course, version, &manifest, None, None,
                    )
                    .await?;
                    report.written = report.written.plus(p.written);
                    report.written = report
                        .written
                        .plus(writer::write_pointer(&**store, course, version, p.root).await?);
                }
                if info.current {
                    fresh.push(Fresh {
                        course: course.clone(),
                        version: version.clone(),
                        root: want,
                    });
                }
            }
        }
    }
    if let Some(owner) = repair
        && report.problems.iter().any(|p| p.version.is_none())
    {
        let w = writer::write_head(catalog, store, owner, &fresh).await?;
        report.written = report.written.plus(w.written);
    }
    Ok(report)
}

async fn present(store: &dyn ObjectStore, key: &object_store::path::Path) -> Result<()> {
    store
        .head(key)
        .await
        .map(drop)
        .map_err(|e| kiln_chunk::store_error::to_error(&format!("checking {key}"), e))
}
