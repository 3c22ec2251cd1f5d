use super::*;

fn tmp(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!(
        "hyperdrive-unit-{}-{name}-{}",
        std::process::id(),
        rand::random::<u32>()
    ))
}

fn meta(v: serde_json::Value) -> WriteOptions {
    WriteOptions {
        executable: false,
        metadata: Some(v),
    }
}

#[tokio::test]
async fn local_put_get_list_del() -> Result<()> {
    let dir = tmp("local");
    let store = Corestore::open_with_primary_key(&dir, [1; 32])?;
    let drive = Hyperdrive::open(&store, DriveOptions::default())?;
    assert!(drive.writable());
    assert_eq!(drive.version(), 1);
    drive
        .put("/a.txt", b"hello", WriteOptions::default())
        .await?;
    drive
        .put(
            "b/c.sh",
            b"#!/bin/sh\n",
            WriteOptions {
                executable: true,
                metadata: None,
            },
        )
        .await?;
    drive
        .put("b/d/e", b"", meta(serde_json::json!({"x": 1})))
        .await?;
    drive.symlink_with("/link", "/a.txt", None)?;
    assert_eq!(drive.get("a.txt").await?.as_deref(), Some(&b"hello"[..]));
    assert_eq!(drive.get("/b/d/e").await?.as_deref(), Some(&b""[..]));
    assert_eq!(drive.get("/link").await?, None);
    assert_eq!(
        drive.entry_follow("/link").await?.map(|e| e.key),
        Some("/a.txt".to_owned())
    );
    let c = drive.entry("/b/c.sh").await?.ok_or(DriveError::ReadOnly)?;
    assert!(c.executable);
    let keys: Vec<String> = drive
        .list_with("/", ListOptions::default())
        .await?
        .into_iter()
        .map(|e| e.key)
        .collect();
    assert_eq!(keys, ["/a.txt", "/b/c.sh", "/b/d/e", "/link"]);
    let keys: Vec<String> = drive
        .list_with("/b", ListOptions::default())
        .await?
        .into_iter()
        .map(|e| e.key)
        .collect();
    assert_eq!(keys, ["/b/c.sh", "/b/d/e"]);
    assert_eq!(drive.readdir("/").await?, ["a.txt", "b", "link"]);
    assert_eq!(drive.readdir("/b").await?, ["c.sh", "d"]);
    let v = drive.version();
    assert!(drive.remove("/a.txt")?);
    assert!(!drive.exists("/a.txt").await?);
    let old = drive.checkout(v);
    assert_eq!(old.get("/a.txt").await?.as_deref(), Some(&b"hello"[..]));
    assert!(matches!(old.remove("/b/c.sh"), Err(DriveError::ReadOnly)));
    let diff = drive.diff(v, "/").await?;
    assert_eq!(diff.len(), 1);
    assert!(diff[0].left.is_none());
    assert_eq!(
        diff[0].right.as_ref().map(|e| e.key.as_str()),
        Some("/a.txt")
    );
    assert!(matches!(
        drive.put("/", b"x", WriteOptions::default()).await,
        Err(DriveError::Path(_))
    ));
    assert!(matches!(
        drive.put("../x", b"x", WriteOptions::default()).await,
        Err(DriveError::Path(_))
    ));
    // The header is what JS writes: protocol "hyperbee", empty metadata.
    assert_eq!(
        drive.core().get(0)?,
        Some(b"\x0a\x08hyperbee\x12\x00".to_vec())
    );
    let key = drive.key();
    let content = drive.content_key();
    drop((drive, old));
    drop(store);
    let store = Corestore::open(&dir)?;
    let again = Hyperdrive::open(&store, DriveOptions::default())?;
    assert_eq!(again.key(), key);
    assert_eq!(again.content_key(), content);
    assert_eq!(
        again.get("/b/c.sh").await?.as_deref(),
        Some(&b"#!/bin/sh\n"[..])
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

#[tokio::test]
async fn streams_batches_and_ranges() -> Result<()> {
    let dir = tmp("stream");
    let store = Corestore::open_with_primary_key(&dir, [2; 32])?;
    let drive = Hyperdrive::open(&store, DriveOptions::default())?;
    let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let mut w = drive.writer("/big", WriteOptions::default()).await?;
    for chunk in big.chunks(7777) {
        w.write(chunk)?;
    }
    w.finish()?;
    assert_eq!(drive.get("/big").await?.as_deref(), Some(&big[..]));
    let r = ReadRange {
        start: Some(70_000),
        end: None,
        length: Some(100_000),
    };
    assert_eq!(
        drive.read_range("/big", r).await?.as_deref(),
        Some(&big[70_000..170_000])
    );
    let mut reader = drive
        .reader(
            "/big",
            ReadRange {
                start: Some(65_535),
                end: Some(65_537),
                length: None,
            },
        )
        .await?
        .ok_or(DriveError::ReadOnly)?;
    let mut got = Vec::new();
    while let Some(c) = reader.next_chunk().await? {
        got.extend_from_slice(&c);
    }
    assert_eq!(got, &big[65_535..65_538]);
    drive
        .put_reader("/r", &big[..1000], WriteOptions::default())
        .await?;
    let v = drive.version();
    let mut b = drive.new_batch()?;
    for i in 0..50 {
        b.put(
            &format!("/many/{i:03}"),
            format!("file {i}").as_bytes(),
            WriteOptions::default(),
        )
        .await?;
    }
    b.del("/r")?;
    assert_eq!(b.flush()?, 51);
    assert_eq!(drive.version(), v + 51);
    assert_eq!(
        drive.get("/many/042").await?.as_deref(),
        Some(&b"file 42"[..])
    );
    assert_eq!(drive.get("/r").await?, None);
    assert_eq!(drive.readdir("/many").await?.len(), 50);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
