//! `kiln verify [COURSE] [--repair [--source PATH [--subdir DIR]]]`: every object a version
//! references is in the store and hashes to its id, and the published view (pointers,
//! roots, segments, the head) says what the catalog says, and every path a version holds
//! can be laid out on a server's disk; with `--repair`, the published view is rewritten
//! where it differs, and bad chunk objects are rebuilt from the source (a path too long to
//! serve is the source's: sync a commit without it). Exits 1 if anything is still bad.

use std::path::PathBuf;

use kiln_core::ids::CourseId;
use serde_json::json;

use crate::args::SyncArgs;
use crate::backends::Env;
use crate::output::emit;

/// Runs the check (and repair) and prints the report.
pub(crate) async fn verify(
    env: &Env,
    course: Option<String>,
    repair_published: bool,
    source: Option<PathBuf>,
    subdir: Option<String>,
    as_json: bool,
) -> anyhow::Result<()> {
    let catalog = env.catalog().await?;
    let store = env.store()?;
    let course = course.as_deref().map(CourseId::new).transpose()?;
    let repair = match source {
        Some(path) => Some(crate::cmd::sync::options(
            env,
            &SyncArgs {
                path,
                course: None,
                rev: None,
                subdir,
            },
        )?),
        None => None,
    };
    let repairing = repair.is_some();
    let report =
        kiln_sync::verify::verify(catalog.clone(), store.clone(), course.as_ref(), repair).await?;
    // The published view after the chunks: a repair may have rebuilt versions.
    let owner = format!("verify@{}", std::process::id());
    let published = kiln_publish::check::check(
        &*catalog,
        &store,
        course.as_ref().map(std::slice::from_ref),
        repair_published.then_some(owner.as_str()),
    )
    .await?;
    let published_bad = if repair_published {
        0
    } else {
        published.problems.len()
    };
    let still_bad = report
        .bad
        .iter()
        .filter(|b| !matches!(b.repair, Some(Ok(()))))
        .count()
        + published_bad;
    let problems: Vec<serde_json::Value> = published
        .problems
        .iter()
        .map(|p| {
            json!({
                "course": p.course.as_str(),
                "version": p.version.as_ref().map(|v| v.as_str()),
                "problem": p.what,
                "repaired": repair_published,
            })
        })
        .collect();
    let bad: Vec<serde_json::Value> = report
        .bad
        .iter()
        .map(|b| {
            json!({
                "chunk": b.id.to_string(),
                "damage": b.damage.to_string(),
                "versions": b.versions.iter()
                    .map(|(c, v)| json!({"course": c.as_str(), "version": v.as_str()}))
                    .collect::<Vec<_>>(),
                "repaired": b.repair.as_ref().map(|r| r.is_ok()),
                "repair_error": b.repair.as_ref().and_then(|r| r.as_ref().err()),
            })
        })
        .collect();
    let unservable: Vec<serde_json::Value> = report
        .unservable
        .iter()
        .map(|u| {
            json!({
                "course": u.course.as_str(),
                "version": u.version.as_str(),
                "chunk": u.chunk.to_string(),
                "path": u.path,
                "problem": u.problem,
            })
        })
        .collect();
    emit(
        as_json,
        json!({
            "versions_checked": report.versions,
            "objects_checked": report.objects,
            "bad": bad,
            "still_bad": still_bad,
            "unservable": unservable,
            "tocs_written": report.tocs_written,
            "published": {
                "versions_checked": published.versions,
                "segments_checked": published.segments,
                "problems": problems,
                "objects_written": published.written.objects,
            },
        }),
        || {
            let mut out = format!(
                "{} objects of {} versions checked: {} bad",
                report.objects,
                report.versions,
                report.bad.len()
            );
            for b in &report.bad {
                let (c, v) = b
                    .versions
                    .first()
                    .map(|(c, v)| (c.as_str(), v.as_str()))
                    .unwrap_or(("?", "?"));
                let more = match b.versions.len() {
                    0 | 1 => String::new(),
                    n => format!(" and {} more versions", n - 1),
                };
                let state = match &b.repair {
                    None => String::new(),
                    Some(Ok(())) => ": repaired".into(),
                    Some(Err(why)) => format!(": NOT repaired ({why})"),
                };
                out.push_str(&format!(
                    "\n  chunk {} ({}), in {c} {v}{more}{state}",
                    b.id, b.damage
                ));
            }
            if repairing {
                out.push_str(&format!(
                    "\n{} tables of contents written",
                    report.tocs_written
                ));
            }
            if !repairing && !report.bad.is_empty() {
                out.push_str("\nrun `kiln verify --repair --source PATH` to store them again");
            }
            for u in &report.unservable {
                out.push_str(&format!(
                    "\n  {} {}: chunk {} cannot be served: {}",
                    u.course, u.version, u.chunk, u.problem
                ));
            }
            if !report.unservable.is_empty() {
                out.push_str("\nsync a commit without these paths (sync refuses them now)");
            }
            out.push_str(&format!(
                "\npublished view: {} versions, {} segments checked: {} problems",
                published.versions,
                published.segments,
                published.problems.len()
            ));
            for p in &published.problems {
                let at = p
                    .version
                    .as_ref()
                    .map_or("head".to_string(), |v| v.to_string());
                let state = if repair_published { ": repaired" } else { "" };
                out.push_str(&format!("\n  {} {at}: {}{state}", p.course, p.what));
            }
            if !repair_published && !published.problems.is_empty() {
                out.push_str("\nrun `kiln verify --repair` to rewrite them");
            }
            out
        },
    );
    if still_bad > 0 {
        let (n, are) = if still_bad == 1 {
            ("object", "is")
        } else {
            ("objects", "are")
        };
        eprintln!("kiln: {still_bad} {n} {are} missing, corrupt or wrong");
    }
    if !report.unservable.is_empty() {
        match report.unservable.len() {
            1 => eprintln!(
                "kiln: 1 chunk of a version holds a path too long for a server's file system"
            ),
            n => eprintln!(
                "kiln: {n} chunks of versions hold paths too long for a server's file system"
            ),
        }
    }
    if still_bad > 0 || !report.unservable.is_empty() {
        std::process::exit(1);
    }
    Ok(())
}
