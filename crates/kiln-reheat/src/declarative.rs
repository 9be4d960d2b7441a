//! The declarative handler: a config file's source (HTTP listing or course) plus renderer
//! (HTTP or command), as a [`Handler`].

use std::sync::Arc;

use async_trait::async_trait;
use kiln_core::catalog::Catalog;
use kiln_core::ids::{CourseId, LibraryName};
use kiln_core::{Error, Result};
use serde_json::Value;

use crate::command::CommandRenderer;
use crate::config::{LibraryConfig, LibrarySettings, RendererConfig, SourceConfig};
use crate::course::CourseSource;
use crate::handler::{BuildContext, Handler, RenderError, RenderItem, Rendered, Work};
use crate::http::{HttpRenderer, HttpSource};

#[derive(Debug)]
enum Source {
    Http(HttpSource),
    Course(CourseSource),
}

#[derive(Debug)]
enum Renderer {
    Http(HttpRenderer),
    Command(CommandRenderer),
}

/// A handler built from a `[[library]]` table.
#[derive(Debug)]
pub struct DeclarativeHandler {
    library: LibraryName,
    source: Source,
    renderer: Renderer,
    /// The number of an HTTP listing's first page.
    first_page: u64,
}

impl DeclarativeHandler {
    /// Builds the handler of `config` (validated by [`LibraryConfig::settings`]); the
    /// catalog serves course sources.
    pub fn new(
        config: &LibraryConfig,
        settings: &LibrarySettings,
        catalog: Arc<dyn Catalog>,
    ) -> Result<Self> {
        let library = config.library_name()?;
        let source = match &config.source {
            SourceConfig::Http(url) => Source::Http(HttpSource::new(
                library.clone(),
                url.clone(),
                settings.timeout,
            )?),
            SourceConfig::Course(c) => {
                Source::Course(CourseSource::new(CourseId::new(c)?, catalog))
            }
        };
        let renderer = match &config.renderer {
            RendererConfig::Http(url) => Renderer::Http(HttpRenderer::new(
                library.clone(),
                url.clone(),
                settings.timeout,
                settings.max_render_bytes,
            )?),
            RendererConfig::Command(argv) => Renderer::Command(CommandRenderer::new(
                library.clone(),
                argv.clone(),
                config
                    .content_type
                    .clone()
                    .unwrap_or_else(|| "text/html; charset=utf-8".to_string()),
                settings.timeout,
                settings.max_render_bytes,
            )),
        };
        Ok(DeclarativeHandler {
            library,
            source,
            renderer,
            first_page: settings.first_page,
        })
    }
}

#[async_trait]
impl Handler for DeclarativeHandler {
    async fn new_build(&self, ctx: &BuildContext) -> Result<Vec<Work>> {
        match &self.source {
            Source::Http(_) => Ok(vec![Work::Producer {
                cursor: Value::from(self.first_page),
            }]),
            Source::Course(c) => c.new_build(ctx).await,
        }
    }

    async fn produce(&self, ctx: &BuildContext, cursor: &Value) -> Result<Vec<Work>> {
        match &self.source {
            Source::Http(s) => {
                let page = cursor.as_u64().ok_or_else(|| {
                    Error::invalid(format!(
                        "library {}: producer cursor {cursor} is not a page number",
                        self.library
                    ))
                })?;
                s.page(page, ctx.page_size, ctx.group.as_deref()).await
            }
            Source::Course(c) => c.produce(ctx, cursor).await,
        }
    }

    async fn render(&self, key: &str, props: &Value) -> Result<Rendered, RenderError> {
        match &self.renderer {
            Renderer::Http(r) => r.render(key, props).await,
            Renderer::Command(r) => r.render(key, props).await,
        }
    }

    async fn live_item(&self, key: &str) -> Result<Option<RenderItem>> {
        match &self.source {
            // An HTTP listing cannot be asked for one key: render it with `{"key": KEY}`
            // (what a read miss, and a stale key's re-render, send to the renderer).
            Source::Http(_) => Ok(Some(RenderItem {
                key: key.to_string(),
                group: String::new(),
                props: serde_json::json!({ "key": key }),
            })),
            Source::Course(c) => c.live_item(key).await,
        }
    }

    async fn default_build(&self) -> Result<Option<String>> {
        match &self.source {
            Source::Http(_) => Ok(None),
            Source::Course(c) => Ok(Some(c.current_version().await?.to_string())),
        }
    }
}
