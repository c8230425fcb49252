//! Unit tests of the filesystem core against the in-memory store.

use super::*;
use crate::store::mem::MemStore;

const WRITE: OpenMode = OpenMode { write: true, read: false, truncate: true };
const PID: u32 = 100;
const READ: OpenMode = OpenMode { write: false, read: true, truncate: false };

fn fs_with(objects: &[(&str, &str)], prefix: &str) -> (Arc<MemStore>, Fs<MemStore>) {
    let store = Arc::new(MemStore::default());
    for (key, body) in objects {
        store.insert(key, body.as_bytes().to_vec());
    }
    let config = FsConfig {
        prefix: prefix.to_owned(),
        upload: UploadConfig { part_size: 8, max_parallel_parts: 2 },
        ..FsConfig::default()
    };
    (store.clone(), Fs::new(store, config, Metrics::default()))
}

async fn names(fs: &Fs<MemStore>, ino: u64) -> Vec<String> {
    let fh = fs.opendir(ino).unwrap();
    fs.readdir(ino, fh, 0).await.unwrap().into_iter().map(|e| e.name).collect()
}

async fn read_all(fs: &Fs<MemStore>, ino: u64) -> Vec<u8> {
    let fh = fs.open(ino, READ, PID).await.unwrap();
    let mut out = Vec::new();
    loop {
        let chunk = fs.read(fh, out.len() as u64, 5).await.unwrap();
        if chunk.is_empty() {
            break;
        }
        out.extend_from_slice(&chunk);
    }
    fs.release(fh).await.unwrap();
    out
}

#[tokio::test]
async fn listing_shows_files_and_implicit_and_marked_directories() {
    let (_, fs) = fs_with(&[("a.txt", "A"), ("d/x", "X"), ("e/", ""), ("d/sub/y", "Y")], "");
    assert_eq!(names(&fs, ROOT).await, [".", "..", "a.txt", "d", "e"]);
    let d = fs.lookup(ROOT, "d").await.unwrap();
    assert_eq!(d.kind, Kind::Dir);
    assert_eq!(names(&fs, d.ino).await, [".", "..", "sub", "x"]);
    let e = fs.lookup(ROOT, "e").await.unwrap();
    assert_eq!(names(&fs, e.ino).await, [".", ".."]);
    assert!(matches!(fs.lookup(ROOT, "missing").await, Err(FsError::NotFound)));
}

#[tokio::test]
async fn a_directory_shadows_a_file_of_the_same_name() {
    let objects = [("n", "file"), ("n/x", "X")];
    // Looked up on a fresh mount (HeadObject and a listing answer) ...
    let (_, fs) = fs_with(&objects, "");
    assert_eq!(fs.lookup(ROOT, "n").await.unwrap().kind, Kind::Dir);
    // ... and from a listing, the same answer.
    let (_, fs) = fs_with(&objects, "");
    assert_eq!(names(&fs, ROOT).await, [".", "..", "n"]);
    assert_eq!(fs.lookup(ROOT, "n").await.unwrap().kind, Kind::Dir);
}

#[tokio::test]
async fn listed_entries_carry_their_attributes_without_asking_the_server() {
    let (store, fs) = fs_with(&[("a.txt", "AAA"), ("d/x", "X")], "");
    let fh = fs.opendir(ROOT).unwrap();
    let entries = fs.readdir(ROOT, fh, 0).await.unwrap();
    store.delete("a.txt").await.unwrap();
    let attrs: Vec<_> = entries.iter().map(|e| (e.name.as_str(), fs.known_attr(e.ino).unwrap())).collect();
    let (_, a) = attrs.iter().find(|(name, _)| *name == "a.txt").unwrap();
    assert_eq!((a.kind, a.size, a.perm), (Kind::File, 3, 0o644));
    let (_, d) = attrs.iter().find(|(name, _)| *name == "d").unwrap();
    assert_eq!(d.kind, Kind::Dir);
    assert_eq!(fs.lookup(ROOT, "a.txt").await.unwrap(), *a, "lookup answers from the same listing");
}

#[tokio::test]
async fn a_small_file_is_looked_up_and_read_with_one_get_and_no_head() {
    let (store, fs) = fs_with(&[("d/f", "small body")], "");
    let d = fs.lookup(ROOT, "d").await.unwrap();
    let (gets, lists) = (store.gets(), store.lists());
    let f = fs.lookup(d.ino, "f").await.unwrap();
    assert_eq!((f.kind, f.size), (Kind::File, 10));
    assert_eq!(read_all(&fs, f.ino).await, b"small body");
    assert_eq!(store.gets() - gets, 1, "the GET at lookup serves the reads");
    assert_eq!(store.lists() - lists, 1, "the directory probe");
    assert_eq!(store.heads(), 0);
}

#[tokio::test]
async fn the_mount_check_lists_the_root_for_the_first_lookups() {
    let (store, fs) = fs_with(&[("p/d/f", "F"), ("p/top", "T"), ("elsewhere", "E")], "p/");
    fs.check_root().await.unwrap();
    assert_eq!(store.lists(), 1, "one listing checks the bucket and lists the root");
    assert_eq!(fs.lookup(ROOT, "d").await.unwrap().kind, Kind::Dir);
    assert_eq!(fs.lookup(ROOT, "top").await.unwrap().size, 1);
    assert!(matches!(fs.lookup(ROOT, "elsewhere").await, Err(FsError::NotFound)));
    assert_eq!((store.lists(), store.gets(), store.heads()), (1, 0, 0), "the lookups asked nothing");
}

#[tokio::test]
async fn the_listing_made_at_a_lookup_answers_the_siblings() {
    let (store, fs) = fs_with(&[("d/a", "A"), ("d/b", "BB"), ("d/c/x", "X")], "");
    let d = fs.lookup(ROOT, "d").await.unwrap();
    let (gets, lists) = (store.gets(), store.lists());
    fs.lookup(d.ino, "a").await.unwrap();
    let b = fs.lookup(d.ino, "b").await.unwrap();
    assert_eq!(fs.lookup(d.ino, "c").await.unwrap().kind, Kind::Dir);
    assert!(matches!(fs.lookup(d.ino, "missing").await, Err(FsError::NotFound)));
    assert_eq!(store.lists() - lists, 1, "one listing of d/");
    assert_eq!(read_all(&fs, b.ino).await, b"BB");
    assert_eq!(store.gets() - gets, 2, "the head of a, then b read at open");
}

#[tokio::test]
async fn a_directory_larger_than_a_page_is_probed_name_by_name() {
    let mut keys: Vec<(String, &str)> = (0..1500).map(|i| (format!("big/{i:05}"), "")).collect();
    keys.push(("big/zz".into(), "file"));
    keys.push(("big/zz/x".into(), "X"));
    keys.push(("big/zy".into(), "file"));
    let objects: Vec<(&str, &str)> = keys.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    let (store, fs) = fs_with(&objects, "");
    let big = fs.lookup(ROOT, "big").await.unwrap();
    let lists = store.lists();
    assert_eq!(fs.lookup(big.ino, "zz").await.unwrap().kind, Kind::Dir, "a directory shadows a file");
    assert_eq!(store.lists() - lists, 2, "the first page, then the name");
    assert_eq!(fs.lookup(big.ino, "zy").await.unwrap().kind, Kind::File);
    assert_eq!(store.lists() - lists, 3, "the name alone, once the directory is known to be large");
}

/// A 300 KiB file (larger than its head) looked up and opened for reading.
async fn open_big() -> (Vec<u8>, Arc<MemStore>, Fs<MemStore>, u64) {
    let body: Vec<u8> = (0..300 * 1024u32).map(|i| (i % 251) as u8).collect();
    let store = Arc::new(MemStore::default());
    store.insert("big", body.clone());
    let fs = Fs::new(store.clone(), FsConfig::default(), Metrics::default());
    let ino = fs.lookup(ROOT, "big").await.unwrap().ino;
    let fh = fs.open(ino, READ, PID).await.unwrap();
    (body, store, fs, fh)
}

#[tokio::test]
async fn a_file_larger_than_its_head_reads_whole() {
    let (body, store, fs, fh) = open_big().await;
    let mut got = Vec::new();
    loop {
        let chunk = fs.read(fh, got.len() as u64, 50_000).await.unwrap();
        if chunk.is_empty() {
            break;
        }
        got.extend_from_slice(&chunk);
    }
    assert_eq!(got, body);
    assert_eq!(store.heads(), 0);
}

#[tokio::test]
async fn try_read_answers_prefetched_bytes_at_once_and_leaves_the_rest_to_read() {
    let (body, store, fs, fh) = open_big().await;
    let gets = store.gets();
    let head = fs.try_read(fh, 0, 4096).expect("the head fetched at lookup is here").unwrap();
    assert_eq!(head[..], body[..4096]);
    // Far from the head: a GET must start, and on this single-threaded
    // runtime it cannot have finished yet.
    let far: usize = 200 * 1024;
    assert!(fs.try_read(fh, far as u64, 4096).is_none(), "a read that needs a GET does not wait");
    let bytes = fs.read(fh, far as u64, 4096).await.unwrap();
    assert_eq!(bytes[..], body[far..far + 4096]);
    let next = fs.try_read(fh, far as u64 + 4096, 4096).expect("the same part, already fetched").unwrap();
    assert_eq!(next[..], body[far + 4096..far + 8192]);
    assert_eq!(store.gets() - gets, 1, "the abandoned try and the read shared one GET");
    let dir = fs.opendir(ROOT).unwrap();
    assert!(fs.try_read(dir, 0, 1).is_none(), "other handles take the ordinary path");
}

#[tokio::test]
async fn large_files_are_read_directly_until_their_reader_reads_in_small_pieces() {
    let store = Arc::new(MemStore::default());
    store.insert("big", vec![7; 1024 * 1024]);
    store.insert("small", vec![7; 1000]);
    let fs = Fs::new(store.clone(), FsConfig::default(), Metrics::default());
    let big = fs.lookup(ROOT, "big").await.unwrap().ino;
    let small = fs.lookup(ROOT, "small").await.unwrap().ino;
    let fh = fs.open(big, READ, PID).await.unwrap();
    assert!(fs.direct_io(fh));
    let small_fh = fs.open(small, READ, PID).await.unwrap();
    assert!(!fs.direct_io(small_fh), "a file fetched whole at open");
    for i in 0..read_mode::SAMPLE_READS {
        fs.read(fh, u64::from(i) * 1024, 1024).await.unwrap();
    }
    assert!(!fs.direct_io(fs.open(big, READ, PID).await.unwrap()), "its reader reads in small pieces");
    assert!(fs.direct_io(fs.open(big, READ, PID + 1).await.unwrap()), "another process");
    let writer = fs.open(big, WRITE, PID + 1).await.unwrap();
    assert!(!fs.direct_io(writer), "only reads go direct");

    let config = FsConfig { page_cache: true, ..FsConfig::default() };
    let fs = Fs::new(store, config, Metrics::default());
    let big = fs.lookup(ROOT, "big").await.unwrap().ino;
    assert!(!fs.direct_io(fs.open(big, READ, PID).await.unwrap()), "--page-cache");
}

#[tokio::test]
async fn a_cached_head_is_not_served_after_the_file_changes() {
    // Through the mount: the rewrite evicts the head.
    let (_, fs) = fs_with(&[("f", "old content")], "");
    let ino = fs.lookup(ROOT, "f").await.unwrap().ino;
    let fh = fs.open(ino, WRITE, PID).await.unwrap();
    fs.write(fh, 0, b"new").await.unwrap();
    fs.release(fh).await.unwrap();
    assert_eq!(read_all(&fs, ino).await, b"new");

    // On the server, once the attributes are revalidated: another ETag.
    let store = Arc::new(MemStore::default());
    store.insert("f", "version one");
    let config = FsConfig { metadata_ttl: Duration::ZERO, ..FsConfig::default() };
    let fs = Fs::new(store.clone(), config, Metrics::default());
    let ino = fs.lookup(ROOT, "f").await.unwrap().ino;
    store.insert("f", "version two, longer");
    assert_eq!(read_all(&fs, ino).await, b"version two, longer");
}

#[tokio::test]
async fn the_prefix_is_the_root() {
    let (store, fs) = fs_with(&[("p/in", "1"), ("out", "2")], "p/");
    assert_eq!(names(&fs, ROOT).await, [".", "..", "in"]);
    let (attr, fh) = fs.create(ROOT, "new", PID).unwrap();
    fs.write(fh, 0, b"n").await.unwrap();
    fs.release(fh).await.unwrap();
    assert_eq!(store.object("p/new").unwrap(), "n");
    assert_eq!(fs.getattr(attr.ino).await.unwrap().size, 1);
}

#[tokio::test]
async fn files_are_written_read_and_listed_while_pending() {
    let (store, fs) = fs_with(&[], "");
    let (attr, fh) = fs.create(ROOT, "f", PID).unwrap();
    fs.write(fh, 0, b"hello ").await.unwrap();
    fs.write(fh, 6, b"world, in parts").await.unwrap();
    assert_eq!(names(&fs, ROOT).await, [".", "..", "f"], "a file being written is listed");
    assert_eq!(fs.lookup(ROOT, "f").await.unwrap().size, 21);
    assert!(matches!(fs.write(fh, 100, b"x").await, Err(FsError::Upload(_))));
    fs.release(fh).await.unwrap();
    assert_eq!(store.object("f").unwrap(), "hello world, in parts");
    assert_eq!(read_all(&fs, attr.ino).await, b"hello world, in parts");
}

#[tokio::test]
async fn overwrite_needs_truncation() {
    let (store, fs) = fs_with(&[("f", "old content")], "");
    let ino = fs.lookup(ROOT, "f").await.unwrap().ino;
    let fh = fs.open(ino, WRITE, PID).await.unwrap();
    fs.write(fh, 0, b"new").await.unwrap();
    fs.flush(fh, PID).await.unwrap();
    fs.release(fh).await.unwrap();
    assert_eq!(store.object("f").unwrap(), "new");
    fs.setattr(ino, Some(0), None).await.unwrap();
    assert_eq!(store.object("f").unwrap(), "");
}

#[tokio::test]
async fn a_flush_from_another_process_does_not_end_the_upload() {
    let (store, fs) = fs_with(&[], "");
    let (_, fh) = fs.create(ROOT, "f", PID).unwrap();
    fs.write(fh, 0, b"before fork ").await.unwrap();
    fs.flush(fh, PID + 1).await.unwrap();
    assert!(store.object("f").is_none(), "a child's close does not upload");
    fs.write(fh, 12, b"and after").await.unwrap();
    fs.flush(fh, PID).await.unwrap();
    assert_eq!(store.object("f").unwrap(), "before fork and after");
}

#[tokio::test]
async fn existing_files_are_changed_in_place_through_staging() {
    let (store, fs) = fs_with(&[("f", "0123456789")], "");
    let ino = fs.lookup(ROOT, "f").await.unwrap().ino;
    let fh = fs.open(ino, OpenMode { write: true, read: true, truncate: false }, PID).await.unwrap();
    fs.write(fh, 2, b"ab").await.unwrap();
    assert_eq!(&fs.read(fh, 0, 100).await.unwrap()[..], b"01ab456789");
    fs.write(fh, 10, b"+appended").await.unwrap();
    assert_eq!(fs.getattr(ino).await.unwrap().size, 19);
    fs.flush(fh, PID).await.unwrap();
    assert_eq!(store.object("f").unwrap(), "01ab456789+appended");
    fs.setattr(ino, Some(4), Some(fh)).await.unwrap();
    fs.release(fh).await.unwrap();
    assert_eq!(store.object("f").unwrap(), "01ab");
    assert_eq!(fs.getattr(ino).await.unwrap().size, 4);
}

#[tokio::test]
async fn in_place_changes_are_refused_when_staging_is_off() {
    let (_, mut fs) = fs_with(&[("f", "0123456789")], "");
    fs.config.staging_limit = 0;
    let ino = fs.lookup(ROOT, "f").await.unwrap().ino;
    let error = fs.open(ino, OpenMode { write: true, read: false, truncate: false }, PID).await.unwrap_err();
    assert_eq!(error.to_errno(), 95);
}

#[tokio::test]
async fn a_flush_before_any_write_is_the_dup2_of_a_redirection() {
    let (store, fs) = fs_with(&[], "");
    let (_, fh) = fs.create(ROOT, "out", PID).unwrap();
    fs.flush(fh, PID).await.unwrap();
    fs.write(fh, 0, b"echo").await.unwrap();
    fs.flush(fh, PID).await.unwrap();
    assert_eq!(store.object("out").unwrap(), "echo");
    let (_, fh) = fs.create(ROOT, "touched", PID).unwrap();
    fs.flush(fh, PID).await.unwrap();
    fs.release(fh).await.unwrap();
    assert_eq!(store.object("touched").unwrap(), "", "release uploads an empty file");
}

#[tokio::test]
async fn unlink_mkdir_rmdir_and_rename() {
    let (store, fs) = fs_with(&[("a", "A"), ("full/x", "X")], "");
    let dir = fs.mkdir(ROOT, "new").await.unwrap();
    assert!(store.object("new/").is_some());
    assert!(matches!(fs.mkdir(ROOT, "new").await, Err(FsError::Exists)));
    fs.rename(ROOT, "a", dir.ino, "b").await.unwrap();
    assert_eq!(store.keys(), ["full/x", "new/", "new/b"]);
    assert!(matches!(fs.lookup(ROOT, "a").await, Err(FsError::NotFound)));
    assert_eq!(read_all(&fs, fs.lookup(dir.ino, "b").await.unwrap().ino).await, b"A");
    assert!(matches!(fs.rmdir(ROOT, "new").await, Err(FsError::NotEmpty)));
    assert!(matches!(fs.rename(ROOT, "full", ROOT, "other").await, Err(FsError::CrossDevice)));
    fs.unlink(dir.ino, "b").await.unwrap();
    fs.rmdir(ROOT, "new").await.unwrap();
    assert_eq!(store.keys(), ["full/x"]);
    assert_eq!(names(&fs, ROOT).await, [".", "..", "full"]);
}

#[tokio::test]
async fn a_read_only_mount_refuses_changes() {
    let (_, mut fs) = fs_with(&[("a", "A")], "");
    fs.config.read_only = true;
    assert!(matches!(fs.create(ROOT, "x", PID), Err(FsError::ReadOnly)));
    assert!(matches!(fs.unlink(ROOT, "a").await, Err(FsError::ReadOnly)));
    let ino = fs.lookup(ROOT, "a").await.unwrap().ino;
    assert!(matches!(fs.open(ino, WRITE, PID).await, Err(FsError::ReadOnly)));
    assert_eq!(read_all(&fs, ino).await, b"A");
}

#[tokio::test]
async fn listings_are_paginated() {
    let keys: Vec<String> = (0..2500).map(|i| format!("many/{i:05}")).collect();
    let objects: Vec<(&str, &str)> = keys.iter().map(|k| (k.as_str(), "")).collect();
    let (_, fs) = fs_with(&objects, "");
    let dir = fs.lookup(ROOT, "many").await.unwrap();
    assert_eq!(names(&fs, dir.ino).await.len(), 2502);
}

mod model {
    //! The filesystem against a reference model: random sequences of
    //! creates, overwrites, appends, unlinks and renames among a few names
    //! must leave the same files with the same contents as a plain map.

    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    #[derive(Debug, Clone)]
    enum Op {
        Write { name: usize, body: Vec<u8> },
        Append { name: usize, body: Vec<u8> },
        Unlink { name: usize },
        Rename { from: usize, to: usize },
    }

    const NAMES: [&str; 4] = ["a", "b", "c", "d"];

    fn op() -> impl Strategy<Value = Op> {
        let name = 0..NAMES.len();
        let body = proptest::collection::vec(any::<u8>(), 0..40);
        prop_oneof![
            (name.clone(), body.clone()).prop_map(|(name, body)| Op::Write { name, body }),
            (name.clone(), body).prop_map(|(name, body)| Op::Append { name, body }),
            name.clone().prop_map(|name| Op::Unlink { name }),
            (name.clone(), name).prop_map(|(from, to)| Op::Rename { from, to }),
        ]
    }

    async fn apply(fs: &Fs<MemStore>, model: &mut BTreeMap<&'static str, Vec<u8>>, op: &Op) {
        match op {
            Op::Write { name, body } => {
                let fh = match fs.lookup(ROOT, NAMES[*name]).await {
                    Ok(attr) => fs.open(attr.ino, WRITE, PID).await.unwrap(),
                    Err(_) => fs.create(ROOT, NAMES[*name], PID).unwrap().1,
                };
                fs.write(fh, 0, body).await.unwrap();
                fs.release(fh).await.unwrap();
                model.insert(NAMES[*name], body.clone());
            }
            Op::Append { name, body } => {
                let Ok(attr) = fs.lookup(ROOT, NAMES[*name]).await else {
                    assert!(!model.contains_key(NAMES[*name]));
                    return;
                };
                let append = OpenMode { write: true, read: false, truncate: false };
                let fh = fs.open(attr.ino, append, PID).await.unwrap();
                fs.write(fh, attr.size, body).await.unwrap();
                fs.release(fh).await.unwrap();
                model.get_mut(NAMES[*name]).expect("the model has it too").extend_from_slice(body);
            }
            Op::Unlink { name } => {
                let result = fs.unlink(ROOT, NAMES[*name]).await;
                assert_eq!(result.is_ok(), model.remove(NAMES[*name]).is_some(), "{result:?}");
            }
            Op::Rename { from, to } => {
                let result = fs.rename(ROOT, NAMES[*from], ROOT, NAMES[*to]).await;
                match model.remove(NAMES[*from]) {
                    Some(body) => {
                        result.unwrap();
                        model.insert(NAMES[*to], body);
                    }
                    None => assert!(matches!(result, Err(FsError::NotFound)), "{result:?}"),
                }
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn the_filesystem_matches_a_map(ops in proptest::collection::vec(op(), 1..25)) {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async {
                let (store, fs) = fs_with(&[], "");
                let mut model = BTreeMap::new();
                for op in &ops {
                    apply(&fs, &mut model, op).await;
                    let listed: Vec<String> = names(&fs, ROOT).await.into_iter().skip(2).collect();
                    let expected: Vec<String> = model.keys().map(|k| (*k).to_owned()).collect();
                    assert_eq!(listed, expected, "after {op:?}");
                }
                for (name, body) in &model {
                    assert_eq!(store.object(name).unwrap(), body.as_slice());
                    let ino = fs.lookup(ROOT, name).await.unwrap().ino;
                    assert_eq!(&read_all(&fs, ino).await, body);
                }
            });
        }
    }
}
