//! kiln-postgres's integration tests against the PostgreSQL at `TEST_POSTGRES_URL` (skipped
//! without it): the conformance suites, plus what is PostgreSQL's own (schemas, connect
//! errors, LISTEN/NOTIFY); and the S3-compatible server at `TEST_S3_ENDPOINT`.

mod connect;
mod notify;
mod s3;

use kiln_postgres::PgDb;

/// A schema name no other test uses: every setup gets its own tables, so tests run in
/// parallel and none deletes another's rows.
pub(crate) fn random_schema() -> String {
    format!("kiln_test_{:016x}", rand::random::<u64>())
}

/// A fresh migrated schema on the test server.
pub(crate) async fn fresh_db(url: &str) -> PgDb {
    PgDb::connect(url, Some(&random_schema()))
        .await
        .expect("connecting to TEST_POSTGRES_URL")
}
