//! Connecting: bad schema names and URLs are refused with a message naming them, an
//! unreachable server is `Unavailable` naming it, and schemas are isolated from each other.

use std::time::Duration;

use kiln_core::Error;
use kiln_core::catalog::{Catalog, NewVersion};
use kiln_core::ids::{CourseId, VersionId};
use kiln_core::manifest::Manifest;
use kiln_postgres::{PgCatalog, PgConfig, PgDb};

#[tokio::test]
async fn a_bad_schema_name_is_refused_and_named() {
    for bad in ["", "Public", "a-b", "1abc", "x;drop", &"a".repeat(49)] {
        let err = PgDb::connect("postgres://postgres@127.0.0.1:1/test", Some(bad))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::InvalidInput(_)), "{bad:?}: {err}");
        assert!(err.to_string().contains(&format!("{bad:?}")), "{err}");
    }
}

#[tokio::test]
async fn a_bad_url_is_refused() {
    let err = PgDb::connect("mysql://nope", None).await.unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)), "{err}");
    assert!(err.to_string().contains("invalid postgres url"), "{err}");
}

#[tokio::test]
async fn an_unreachable_server_is_unavailable_and_named() {
    let mut config = PgConfig::new("postgres://postgres@127.0.0.1:1/test");
    config.connect_timeout = Duration::from_secs(1);
    let err = PgDb::connect_with(&config).await.unwrap_err();
    assert!(err.is_transient(), "{err}");
    assert!(err.to_string().contains("postgres at 127.0.0.1:1"), "{err}");
}

fn version(course: &str, v: &str) -> NewVersion {
    NewVersion {
        course: CourseId::new(course).unwrap(),
        version: VersionId::new(v).unwrap(),
        manifest: Manifest::default(),
    }
}

#[tokio::test]
async fn schemas_do_not_see_each_other() {
    let url = kiln_testkit::skip_unless_env!("TEST_POSTGRES_URL");
    let a = PgCatalog::new(crate::fresh_db(&url).await);
    let b = PgCatalog::new(crate::fresh_db(&url).await);
    a.publish(version("only-in-a", "v1")).await.unwrap();
    assert_eq!(a.courses().await.unwrap().len(), 1);
    assert!(b.courses().await.unwrap().is_empty());
    // Reconnecting to an existing schema keeps its data (migrations are idempotent).
    let again = PgCatalog::new(PgDb::connect(&url, Some(a.db().schema())).await.unwrap());
    assert_eq!(
        again.courses().await.unwrap(),
        vec![CourseId::new("only-in-a").unwrap()]
    );
}
