//! `kiln verify [COURSE] [--repair --source PATH [--subdir DIR]]`: every object a version
//! references is in the store and hashes to its id; with `--repair`, bad ones are rebuilt
//! from the source. Exits 1 if anything is still bad.

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
    let report = kiln_sync::verify::verify(catalog, store, course.as_ref(), repair).await?;
    let still_bad = report
        .bad
        .iter()
        .filter(|b| !matches!(b.repair, Some(Ok(()))))
        .count();
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
    emit(
        as_json,
        json!({
            "versions_checked": report.versions,
            "objects_checked": report.objects,
            "bad": bad,
            "still_bad": still_bad,
            "tocs_written": report.tocs_written,
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
            out
        },
    );
    if still_bad > 0 {
        let (n, are) = if still_bad == 1 {
            ("object", "is")
        } else {
            ("objects", "are")
        };
        eprintln!("kiln: {still_bad} {n} {are} missing or corrupt");
        std::process::exit(1);
    }
    Ok(())
}
