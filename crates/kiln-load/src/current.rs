//! A course's current version: cached in memory, refreshed from the catalog, and served
//! stale (bounded by `max_stale`) while the catalog cannot answer.
//!
//! The chunks of the last known current version are on local disk; a catalog outage must
//! not take them down. So when a refresh fails, the version the catalog last confirmed is
//! served for up to `max_stale` after that confirmation, marked stale. While the catalog is
//! known to be failing, requests do not wait for it at all: they serve the stale version at
//! once and one background refresh per course tries the catalog again.

use std::time::{Duration, Instant};

use kiln_core::ids::{CourseId, VersionId};
use kiln_core::{Error, Result};

use crate::cache::{ChunkCache, lock};
use crate::health::Backend;

/// The current version of a course as [`ChunkCache::current`] found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Current {
    /// The version.
    pub version: VersionId,
    /// `None` when the catalog confirmed it within `refresh_interval`; otherwise the
    /// catalog could not be asked, and this is how long ago it last confirmed it.
    pub stale: Option<Duration>,
}

impl ChunkCache {
    /// The course's current version, from memory when it was read from the catalog less
    /// than `refresh_interval` ago.
    pub async fn current_version(&self, course: &CourseId) -> Result<VersionId> {
        Ok(self.current(course).await?.version)
    }

    /// Like [`ChunkCache::current_version`], saying whether the version is stale: while the
    /// catalog fails, the last version it confirmed is served for up to `max_stale`.
    pub async fn current(&self, course: &CourseId) -> Result<Current> {
        let config = &self.inner().config;
        let known = lock(&self.inner().currents).get(course).cloned();
        if let Some((v, at)) = &known {
            let age = at.elapsed();
            if !config.refresh_interval.is_zero() && age < config.refresh_interval {
                return Ok(Current {
                    version: v.clone(),
                    stale: None,
                });
            }
            if age <= config.max_stale && self.inner().health.failing(Backend::Catalog) {
                self.refresh_in_background(course);
                return Ok(Current {
                    version: v.clone(),
                    stale: Some(age),
                });
            }
        }
        match self.refresh_now(course).await {
            Ok(Some(version)) => Ok(Current {
                version,
                stale: None,
            }),
            Ok(None) => Err(Error::not_found(format!("course {:?}", course.as_str()))),
            Err(e) => match known {
                Some((version, at)) if at.elapsed() <= config.max_stale => {
                    tracing::warn!(%course, %version, "catalog unavailable, serving the last known current version: {e}");
                    Ok(Current {
                        version,
                        stale: Some(at.elapsed()),
                    })
                }
                _ => Err(e),
            },
        }
    }

    /// Reads the course's current version from the catalog now (e.g. on a change
    /// notification) and remembers it.
    pub async fn refresh_now(&self, course: &CourseId) -> Result<Option<VersionId>> {
        let current = self.inner().content.current(course).await;
        let current = self.inner().health.record(Backend::Catalog, current)?;
        let mut currents = lock(&self.inner().currents);
        match current {
            Some(info) => {
                let version = info.version;
                currents.insert(course.clone(), (version.clone(), Instant::now()));
                Ok(Some(version))
            }
            None => {
                currents.remove(course);
                Ok(None)
            }
        }
    }

    /// One refresh of the course at a time in the background, for requests that do not
    /// wait for a failing catalog.
    fn refresh_in_background(&self, course: &CourseId) {
        if !lock(&self.inner().refreshing).insert(course.clone()) {
            return;
        }
        let (cache, course) = (self.clone(), course.clone());
        tokio::spawn(async move {
            if let Err(e) = cache.refresh_now(&course).await {
                tracing::debug!(%course, "background refresh of the current version failed: {e}");
            }
            lock(&cache.inner().refreshing).remove(&course);
        });
    }
}
