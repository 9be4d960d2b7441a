//! The S3-compatible server that `.ci/services.sh` starts: an object put through
//! `object_store`'s AmazonS3 (as kiln's fleet configuration opens it) reads back intact.

use object_store::aws::AmazonS3Builder;
use object_store::path::Path;
use object_store::{ObjectStore, PutPayload};

#[tokio::test]
async fn an_object_round_trips_through_the_s3_server() {
    let endpoint = kiln_testkit::skip_unless_env!("TEST_S3_ENDPOINT");
    let bucket = std::env::var("TEST_S3_BUCKET").unwrap_or_else(|_| "kiln-test".into());
    let store = AmazonS3Builder::from_env()
        .with_endpoint(endpoint)
        .with_allow_http(true)
        .with_bucket_name(bucket)
        .with_virtual_hosted_style_request(false)
        .build()
        .expect("building the S3 client from TEST_S3_* and AWS_* variables");
    let path = Path::from(format!(
        "kiln-test/{:016x}/hello.txt",
        rand::random::<u64>()
    ));
    let body = format!("hello {path}");
    store
        .put(&path, PutPayload::from(body.clone().into_bytes()))
        .await
        .unwrap();
    let got = store.get(&path).await.unwrap().bytes().await.unwrap();
    assert_eq!(&got[..], body.as_bytes());
    store.delete(&path).await.unwrap();
    let gone = store.get(&path).await.unwrap_err();
    assert!(
        matches!(gone, object_store::Error::NotFound { .. }),
        "{gone}"
    );
}
