//! The course source: the questions of a course's current version, one render job each.
//!
//! The new-build job pins the current version and enqueues one producer per page of its
//! question chunks, so every page of a run sees the same version. Key = qid, group = the
//! course, props = `{course, version, qid, chunk}`.

use std::sync::Arc;

use kiln_core::catalog::Catalog;
use kiln_core::ids::{ChunkKind, CourseId, VersionId};
use kiln_core::{Error, Result};
use serde_json::{Value, json};

use crate::handler::{BuildContext, RenderItem, Work};

/// Lists a course's questions.
#[derive(Debug, Clone)]
pub struct CourseSource {
    course: CourseId,
    catalog: Arc<dyn Catalog>,
}

impl CourseSource {
    /// The source of `course`'s questions.
    pub fn new(course: CourseId, catalog: Arc<dyn Catalog>) -> Self {
        CourseSource { course, catalog }
    }

    /// The course's current version, or a not-found error naming the course.
    pub async fn current_version(&self) -> Result<VersionId> {
        self.catalog
            .current(&self.course)
            .await?
            .map(|v| v.version)
            .ok_or_else(|| {
                Error::not_found(format!(
                    "current version of course {:?}",
                    self.course.as_str()
                ))
            })
    }

    /// One producer per page of the current version's questions.
    pub async fn new_build(&self, ctx: &BuildContext) -> Result<Vec<Work>> {
        let version = self.current_version().await?;
        let manifest = self.catalog.manifest(&self.course, &version).await?;
        let questions = manifest
            .entries()
            .iter()
            .filter(|e| e.kind == ChunkKind::Question)
            .count();
        let pages = questions.div_ceil(ctx.page_size as usize);
        Ok((0..pages)
            .map(|page| Work::Producer {
                cursor: json!({"version": version.as_str(), "page": page}),
            })
            .collect())
    }

    /// The render jobs of one page.
    pub async fn produce(&self, ctx: &BuildContext, cursor: &Value) -> Result<Vec<Work>> {
        let bad = || {
            Error::invalid(format!(
                "library {}: course producer cursor {cursor} is not {{version, page}}",
                ctx.library
            ))
        };
        let version = cursor
            .get("version")
            .and_then(Value::as_str)
            .ok_or_else(bad)?;
        let page = cursor.get("page").and_then(Value::as_u64).ok_or_else(bad)? as usize;
        let version = VersionId::new(version)?;
        let manifest = self.catalog.manifest(&self.course, &version).await?;
        let size = ctx.page_size as usize;
        Ok(manifest
            .entries()
            .iter()
            .filter(|e| e.kind == ChunkKind::Question)
            .skip(page * size)
            .take(size)
            .map(|e| {
                Work::Render(RenderItem {
                    key: e.name.clone(),
                    group: self.course.to_string(),
                    props: json!({
                        "course": self.course.as_str(),
                        "version": version.as_str(),
                        "qid": e.name,
                        "chunk": e.id.to_hex(),
                    }),
                })
            })
            .collect())
    }

    /// The item for a live miss of qid `key` in the current version.
    pub async fn live_item(&self, key: &str) -> Result<Option<RenderItem>> {
        let version = self.current_version().await?;
        let manifest = self.catalog.manifest(&self.course, &version).await?;
        let chunk = kiln_core::ids::ChunkRef {
            kind: ChunkKind::Question,
            name: key.to_string(),
        };
        Ok(manifest.get(&chunk).map(|e| RenderItem {
            key: e.name.clone(),
            group: self.course.to_string(),
            props: json!({
                "course": self.course.as_str(),
                "version": version.as_str(),
                "qid": e.name,
                "chunk": e.id.to_hex(),
            }),
        }))
    }
}
