//! `kiln versions` and `kiln chunks`: reading the catalog.

use anyhow::Context;
use kiln_core::ids::{CourseId, VersionId};
use serde_json::json;

use crate::backends::Env;
use crate::output::{bytes, emit};

/// `kiln versions COURSE`.
pub(crate) async fn versions(env: &Env, course: &str, as_json: bool) -> anyhow::Result<()> {
    let course = CourseId::new(course)?;
    let catalog = env.catalog().await?;
    let versions = catalog.versions(&course).await?;
    let rows: Vec<_> = versions
        .iter()
        .map(|v| {
            json!({
                "version": v.version.as_str(),
                "created_at": v.created_at.0,
                "current": v.current,
            })
        })
        .collect();
    emit(
        as_json,
        json!({ "course": course.as_str(), "versions": rows }),
        || {
            versions
                .iter()
                .map(|v| {
                    format!(
                        "{} {}{}",
                        v.version,
                        v.created_at.0,
                        if v.current { "  (current)" } else { "" }
                    )
                })
                .collect::<Vec<_>>()
                .join("\n")
        },
    );
    Ok(())
}

/// `kiln chunks COURSE [--version V]`.
pub(crate) async fn chunks(
    env: &Env,
    course: &str,
    version: Option<&str>,
    as_json: bool,
) -> anyhow::Result<()> {
    let course = CourseId::new(course)?;
    let catalog = env.catalog().await?;
    let version = match version {
        Some(v) => VersionId::new(v)?,
        None => {
            catalog
                .current(&course)
                .await?
                .with_context(|| format!("course {course} has no version"))?
                .version
        }
    };
    let manifest = catalog.manifest(&course, &version).await?;
    let rows: Vec<_> = manifest
        .entries()
        .iter()
        .map(|e| {
            json!({
                "kind": e.kind.as_str(),
                "name": e.name,
                "id": e.id.to_hex(),
                "size": e.size,
                "root": e.root,
            })
        })
        .collect();
    emit(
        as_json,
        json!({ "course": course.as_str(), "version": version.as_str(), "chunks": rows }),
        || {
            let mut out = format!("{course} @ {version}\n");
            for e in manifest.entries() {
                out.push_str(&format!(
                    "{:<26} {:<32} {}  {:>10}  {}\n",
                    e.kind.as_str(),
                    if e.name.is_empty() { "-" } else { &e.name },
                    &e.id.to_hex()[..12],
                    bytes(e.size),
                    if e.root.is_empty() {
                        "(gathered)"
                    } else {
                        &e.root
                    },
                ));
            }
            out.push_str(&format!(
                "{} chunks, {}",
                manifest.entries().len(),
                bytes(manifest.total_size())
            ));
            out
        },
    );
    Ok(())
}

/// `kiln gc [--grace D]`.
pub(crate) async fn gc(env: &Env, grace: std::time::Duration, as_json: bool) -> anyhow::Result<()> {
    let catalog = env.catalog().await?;
    let store = env.store()?;
    let opts = kiln_sync::gc::GcOptions {
        grace,
        local_root: env.local_store_root(),
    };
    let report = kiln_sync::gc::gc(catalog, store, opts).await?;
    emit(
        as_json,
        json!({
            "objects_deleted": report.objects_deleted,
            "bytes_freed": report.bytes_freed,
            "objects_kept": report.objects_kept,
            "temp_files_removed": report.temp_files_removed,
        }),
        || {
            format!(
                "{} objects deleted ({}), {} kept",
                report.objects_deleted,
                bytes(report.bytes_freed),
                report.objects_kept
            )
        },
    );
    Ok(())
}
