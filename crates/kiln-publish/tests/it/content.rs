//! The ContentView suite against every answer a server may read: the catalog (in memory,
//! SQLite, PostgreSQL) and the published view (a local directory, S3).

use std::sync::Arc;

use kiln_core::catalog::Catalog;
use kiln_testkit::mem::catalog::MemCatalog;

use crate::support::{CatalogFixture, PublishedFixture, local_store, s3_store};

mod catalog_mem {
    use super::*;
    kiln_testkit::content_tests!(|| async {
        let (store, dir) = local_store();
        CatalogFixture::new(Arc::new(MemCatalog::new()), store, dir)
    });
}

mod catalog_sqlite {
    use super::*;
    kiln_testkit::content_tests!(|| async {
        let (store, dir) = local_store();
        let catalog = kiln_sqlite::DataDir::new(dir.path())
            .catalog()
            .await
            .unwrap();
        CatalogFixture::new(Arc::new(catalog) as Arc<dyn Catalog>, store, dir)
    });
}

mod published_local {
    use super::*;
    kiln_testkit::content_tests!(|| async {
        let (store, dir) = local_store();
        PublishedFixture::new(Arc::new(MemCatalog::new()), store, Some(dir)).await
    });
}

mod published_s3 {
    use super::*;
    kiln_testkit::content_tests!(|| async {
        // Without S3 (outside CI, which requires it) the checks run on a local directory,
        // and `service_env` says S3 was skipped.
        match s3_store() {
            Some(s) => PublishedFixture::new(Arc::new(MemCatalog::new()), s, None).await,
            None => {
                let (s, dir) = local_store();
                PublishedFixture::new(Arc::new(MemCatalog::new()), s, Some(dir)).await
            }
        }
    });
}
