//! Libraries: a name, a handler and settings; the set of them a process knows.

use std::collections::BTreeMap;
use std::sync::Arc;

use kiln_core::catalog::Catalog;
use kiln_core::ids::{CourseId, LibraryName};
use kiln_core::{Error, Result};

use crate::config::{LibraryConfig, LibrarySettings, SourceConfig};
use crate::declarative::DeclarativeHandler;
use crate::handler::Handler;

/// A render library.
#[derive(Debug, Clone)]
pub struct Library {
    /// Its name.
    pub name: LibraryName,
    /// Its handler.
    pub handler: Arc<dyn Handler>,
    /// Its settings.
    pub settings: LibrarySettings,
    /// The course whose new versions it reheats (a `source = { course = .. }` library).
    pub course: Option<CourseId>,
}

impl Library {
    /// A library with a Rust handler.
    pub fn new(name: LibraryName, handler: Arc<dyn Handler>, settings: LibrarySettings) -> Self {
        Library {
            name,
            handler,
            settings,
            course: None,
        }
    }

    /// A library from its config table (validated here).
    pub fn from_config(config: &LibraryConfig, catalog: Arc<dyn Catalog>) -> Result<Self> {
        let settings = config.settings()?;
        let handler = DeclarativeHandler::new(config, &settings, catalog)?;
        Ok(Library {
            name: config.library_name()?,
            handler: Arc::new(handler),
            settings,
            course: match &config.source {
                SourceConfig::Course(c) => Some(CourseId::new(c)?),
                SourceConfig::Http(_) => None,
            },
        })
    }
}

/// The libraries a process serves, by name.
#[derive(Debug, Clone, Default)]
pub struct Libraries {
    by_name: BTreeMap<String, Library>,
}

impl Libraries {
    /// No libraries.
    pub fn new() -> Self {
        Self::default()
    }

    /// The libraries of config tables; fails on a duplicate name or an invalid table.
    pub fn from_configs(configs: &[LibraryConfig], catalog: Arc<dyn Catalog>) -> Result<Self> {
        let mut libs = Libraries::new();
        for c in configs {
            libs.insert(Library::from_config(c, catalog.clone())?)?;
        }
        Ok(libs)
    }

    /// Adds a library; fails if the name is taken.
    pub fn insert(&mut self, library: Library) -> Result<()> {
        if self.by_name.contains_key(library.name.as_str()) {
            return Err(Error::AlreadyExists {
                what: format!("library {:?}", library.name.as_str()),
            });
        }
        self.by_name.insert(library.name.to_string(), library);
        Ok(())
    }

    /// The library called `name`, or a not-found error naming it and the known ones.
    pub fn get(&self, name: &str) -> Result<&Library> {
        self.by_name.get(name).ok_or_else(|| {
            let known: Vec<&str> = self.by_name.keys().map(String::as_str).collect();
            Error::not_found(format!(
                "library {name:?} (configured: {})",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            ))
        })
    }

    /// The libraries that reheat course `course` (what `kiln sync` triggers after a publish).
    pub fn for_course<'a>(
        &'a self,
        course: &'a CourseId,
    ) -> impl Iterator<Item = &'a Library> + 'a {
        self.by_name
            .values()
            .filter(move |l| l.course.as_ref() == Some(course))
    }

    /// Every library, by name.
    pub fn iter(&self) -> impl Iterator<Item = &Library> {
        self.by_name.values()
    }

    /// Every library as a throttle key with its limits, as a worker's leases name them: a
    /// render job's key is its library (see `payload`), so a worker takes the render jobs
    /// of the libraries it knows, and no other.
    pub fn throttles(&self) -> Vec<kiln_core::throttle::Throttle> {
        self.iter()
            .map(|l| kiln_core::throttle::Throttle {
                key: l.name.as_str().to_owned(),
                limit: l.settings.limits,
            })
            .collect()
    }
}
