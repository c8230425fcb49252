//! The S3 server is real: objects round-trip, and access keys can be created
//! and revoked, which the mounter's rotation tests rely on.

use test_platform::TestS3;

#[tokio::test]
async fn object_put_then_get_returns_the_same_bytes() {
    let s3 = TestS3::shared().await;
    let bucket = s3.bucket().await.unwrap();
    let body: Vec<u8> = (0..=255u8).cycle().take(1 << 20).collect();
    bucket.put("dir/blob.bin", body.clone()).await.unwrap();
    assert_eq!(bucket.get("dir/blob.bin").await.unwrap(), body);
}

#[tokio::test]
async fn created_access_key_works_until_revoked() {
    let s3 = TestS3::shared().await;
    let bucket = s3.bucket().await.unwrap();
    bucket.put("hello.txt", "hello").await.unwrap();

    let key = s3.create_access_key().unwrap();
    assert_eq!(bucket.get_as("hello.txt", &key.credentials()).await.unwrap(), b"hello");

    s3.revoke_access_key(&key).unwrap();
    let error = bucket.get_as("hello.txt", &key.credentials()).await.unwrap_err();
    assert!(error.to_string().contains("403"), "revoked key must be refused, got: {error}");
}

#[tokio::test]
async fn access_key_debug_output_hides_the_secret() {
    let s3 = TestS3::shared().await;
    let key = s3.create_access_key().unwrap();
    let debug = format!("{key:?}");
    assert!(debug.contains(&key.access_key));
    assert!(!debug.contains(&key.secret_key));
    s3.revoke_access_key(&key).unwrap();
}
