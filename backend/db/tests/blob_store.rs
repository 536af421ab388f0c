//! The blob store's promises, on a local folder and on S3-compatible storage
//! (moto's server, `RIPOSTE_TEST_S3_SERVER`): content addressing, reads that
//! match, streaming, large (multipart) objects, nothing stored when a write
//! fails, listing, and the sweep's grace period.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::time::Duration;

use futures_util::StreamExt;
use riposte_db::blobs::BlobStore;
use riposte_db::testing::S3Server;
use sha2::{Digest, Sha256};

fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Bytes that are not all alike (a pattern a broken part order would show).
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u64).wrapping_mul(2_654_435_761).to_le_bytes()[1] ^ seed)
        .collect()
}

async fn check_store(blobs: &BlobStore) {
    // Small blob through a writer: its name is its hash, its bytes come back.
    let small = pattern(10_000, 1);
    let mut writer = blobs.writer().unwrap();
    writer.write(&small[..4000]).unwrap();
    writer.write(&small[4000..]).unwrap();
    let (name, size) = blobs.finish(writer).await.unwrap();
    assert_eq!((name.clone(), size), (sha(&small), small.len() as u64));
    assert_eq!(blobs.read(&name).await.unwrap(), small);
    // The same bytes again: the same blob, stored once.
    assert_eq!(blobs.put_bytes(small.clone()).await.unwrap(), name);

    // A large blob (over the single-PUT size: a multipart upload on S3).
    let large = pattern(20 * 1024 * 1024 + 12_345, 2);
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), &large).unwrap();
    let large_name = blobs.put_file(file.path()).await.unwrap();
    assert_eq!(large_name, sha(&large));
    let (len, mut stream) = blobs.stream(&large_name).await.unwrap();
    assert_eq!(len, large.len() as u64);
    let mut streamed = Vec::new();
    while let Some(chunk) = stream.next().await {
        streamed.extend_from_slice(&chunk.unwrap());
    }
    assert!(streamed == large, "streamed bytes differ");
    let copy = blobs.local_copy(&large_name).await.unwrap();
    assert!(std::fs::read(copy.path()).unwrap() == large);

    // A write whose staged bytes change before they are stored fails and
    // leaves nothing behind (the multipart upload is aborted).
    let changed = pattern(18 * 1024 * 1024, 3);
    let mut writer = blobs.writer().unwrap();
    writer.write(&changed).unwrap();
    let claimed = writer.sha256();
    std::fs::write(writer.path(), pattern(18 * 1024 * 1024, 4)).unwrap();
    if blobs.is_remote() {
        let e = blobs.finish(writer).await.unwrap_err();
        assert!(format!("{e:#}").contains("changed"), "{e:#}");
        assert!(
            blobs.read(&claimed).await.is_err(),
            "a torn blob was stored"
        );
    } else {
        // A local store renames the staged file: nothing is re-read to change.
        drop(writer);
    }

    // Hostile names never reach the store.
    assert!(blobs.read("../../etc/passwd").await.is_err());
    assert!(blobs.read(&"A".repeat(64)).await.is_err());

    let listed: HashSet<String> = blobs.list().await.unwrap().into_iter().collect();
    assert!(
        listed.contains(&name) && listed.contains(&large_name),
        "{listed:?}"
    );
    assert!(!listed.contains(&claimed));

    // The sweep keeps what is referenced and what is younger than its grace.
    let report = blobs
        .sweep(HashSet::from([name.clone()]), Duration::from_secs(3600))
        .await
        .unwrap();
    assert_eq!(report.blobs, 0, "young blobs are kept: {report:?}");
    let report = blobs
        .sweep(HashSet::from([name.clone()]), Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(report.blobs, 1, "{report:?}");
    assert_eq!(report.bytes, large.len() as u64);
    assert_eq!(blobs.list().await.unwrap(), vec![name.clone()]);
    assert!(blobs.read(&large_name).await.is_err());
    blobs.check().await.unwrap();
}

#[tokio::test]
async fn a_local_folder_keeps_the_promises() {
    let dir = tempfile::tempdir().unwrap();
    let blobs = BlobStore::open("", dir.path()).unwrap();
    assert!(!blobs.is_remote());
    assert!(blobs.describe().ends_with("blobs"));
    check_store(&blobs).await;
}

#[tokio::test]
async fn s3_compatible_storage_keeps_the_promises() {
    let Some(server) = S3Server::start("riposte-blobs").unwrap() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let env = server.env();
    let options: Vec<(&str, String)> = env.iter().map(|(k, v)| (*k, v.clone())).collect();
    let blobs = BlobStore::open_with("s3://riposte-blobs/test/run", dir.path(), &options).unwrap();
    assert!(blobs.is_remote());
    check_store(&blobs).await;
    // Nothing but the (empty) staging folder on the local disk.
    let staged: Vec<_> = std::fs::read_dir(dir.path().join("blob-uploads"))
        .unwrap()
        .collect();
    assert!(staged.is_empty(), "{staged:?}");
}

#[tokio::test]
async fn a_missing_bucket_is_not_ready_and_bad_settings_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    for bad in ["s3://", "s3:///prefix", "ftp://host/x"] {
        let e = BlobStore::open(bad, dir.path()).unwrap_err();
        assert!(format!("{e:#}").contains("blob_store"), "{bad}: {e:#}");
    }
    let Some(server) = S3Server::start("riposte-present").unwrap() else {
        return;
    };
    let env = server.env();
    let options: Vec<(&str, String)> = env.iter().map(|(k, v)| (*k, v.clone())).collect();
    let absent = BlobStore::open_with("s3://riposte-absent", dir.path(), &options).unwrap();
    assert!(absent.check().await.is_err());
    assert!(absent.put_bytes(b"x".to_vec()).await.is_err());
}
