//! "Diffable" drives (issue #15 part 3), measured; run by `benches/drives-cdc.sh`.
//!
//!   drives_cdc_bench WORKDIR [SIZE_MIB] [CHANGE_MIB] [NODE_PEER_JS]
//!
//! 1. Import speed of new data: a SIZE_MIB random file imported (folder -> hyperdrive through the mirror, as
//!    `drives mirror` does) into fresh stores, with and without chunking (best of 5 each, alternating; wall and CPU time).
//! 2. The chunked store's file changed: CHANGE_MIB overwritten in the middle, re-imported; then CHANGE_MIB
//!    inserted at the start, re-imported. For each: bytes appended to the blobs core.
//! 3. A replica that downloaded the first version (over loopback TCP + secret-stream) downloads each new
//!    version: bytes of the blocks it fetched; its copy is checked byte-exact (BLAKE2b).
//! 4. With NODE_PEER_JS (tests/interop/js/hyperdrive_peer.js): a JS hyperdrive 13 reader gets the last
//!    version and its BLAKE2b-256 is compared.
//!
//! Prints one `key value` line per figure.

use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use holepunch::corestore::Corestore;
use holepunch::drive::Drive;
use holepunch::hypercore::Hypercore;
use holepunch::hyperdrive::{DriveOptions, Hyperdrive};
use holepunch::localdrive::Localdrive;
use holepunch::mirror::{Mirror, MirrorOptions};
use holepunch::noise::Keypair;
use holepunch::secret_stream::SecretStream;
use tokio::net::{TcpListener, TcpStream};

const MIB: u64 = 1 << 20;

/// Random-looking bytes from a seed (xorshift64*), `len` of them appended to `w`.
fn write_noise(w: &mut impl Write, seed: u64, len: u64) -> std::io::Result<()> {
    let mut x = seed | 1;
    let mut buf = vec![0u8; MIB as usize];
    let mut left = len;
    while left > 0 {
        for word in buf.chunks_mut(8) {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            let v = x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes();
            word.copy_from_slice(&v[..word.len()]);
        }
        let n = left.min(MIB) as usize;
        w.write_all(&buf[..n])?;
        left -= n as u64;
    }
    Ok(())
}

/// BLAKE2b-256 of a file, streamed (what the JS peer's `hash` computes).
fn file_hash(path: &Path) -> anyhow::Result<String> {
    let mut st = blake2b_simd::Params::new().hash_length(32).to_state();
    let mut f = std::fs::File::open(path)?;
    let mut buf = vec![0u8; MIB as usize];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        st.update(&buf[..n]);
    }
    Ok(hex::encode(st.finalize().as_bytes()))
}

async fn content_hash(drive: &Hyperdrive, key: &str) -> anyhow::Result<String> {
    let entry = drive
        .entry(key)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no {key}"))?;
    let mut r = drive.read(&entry, 0, None).await?;
    let mut st = blake2b_simd::Params::new().hash_length(32).to_state();
    while let Some(chunk) = r.next_chunk().await? {
        st.update(&chunk);
    }
    Ok(hex::encode(st.finalize().as_bytes()))
}

fn open(dir: &Path, chunking: bool) -> anyhow::Result<(Corestore, Hyperdrive)> {
    let store = Corestore::open(dir)?;
    let opts = DriveOptions {
        chunking,
        ..DriveOptions::default()
    };
    let drive = Hyperdrive::open(&store, opts)?;
    Ok((store, drive))
}

/// CPU time (user + system) of this process so far.
fn cpu_time() -> Duration {
    // SAFETY: getrusage writes into the zeroed struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_SELF with a valid pointer.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

async fn import(folder: &Path, drive: &Hyperdrive) -> anyhow::Result<Duration> {
    let t = Instant::now();
    let src = Localdrive::new(folder);
    Mirror::new(&src, drive, MirrorOptions::default())
        .run(|_| {})
        .await?;
    Ok(t.elapsed())
}

async fn blobs_bytes(drive: &Hyperdrive) -> anyhow::Result<u64> {
    Ok(drive.blobs().await?.core().byte_length())
}

/// Which blocks of `core` are stored.
fn stored(core: &Hypercore) -> Vec<bool> {
    (0..core.length()).map(|i| core.has(i)).collect()
}

/// Bytes of the blocks stored now that `had` did not list.
fn fetched_bytes(core: &Hypercore, had: &[bool]) -> u64 {
    (0..core.length())
        .filter(|&i| core.has(i) && !had.get(i as usize).copied().unwrap_or(false))
        .map(|i| core.get(i).ok().flatten().map_or(0, |b| b.len() as u64))
        .sum()
}

/// The replica fetches the writer's current version of `/big.bin` (download + read), checks it and returns
/// the bytes it downloaded.
async fn replica_fetch(
    writer: &Hyperdrive,
    reader: &Hyperdrive,
    want: &str,
) -> anyhow::Result<(u64, Duration)> {
    reader.wait_for_version(writer.version()).await?;
    let core = reader.blobs().await?.core().clone();
    let had = stored(&core);
    let t = Instant::now();
    reader.download("/").await?;
    let got = content_hash(reader, "/big.bin").await?;
    let took = t.elapsed();
    anyhow::ensure!(got == want, "replica read a different /big.bin");
    Ok((fetched_bytes(&core, &had), took))
}

fn js_check(
    peer_js: &Path,
    dir: &Path,
    key: [u8; 32],
    port: u16,
    want: &str,
) -> anyhow::Result<()> {
    let cwd = peer_js
        .parent()
        .and_then(Path::parent)
        .ok_or_else(|| anyhow::anyhow!("bad peer path"))?;
    let mut child = Command::new("node")
        .current_dir(cwd)
        .arg(peer_js)
        .args(["reader", &dir.display().to_string(), &hex::encode(key)])
        .args(["connect", &port.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let mut stdin = child.stdin.take().ok_or_else(|| anyhow::anyhow!("stdin"))?;
    let mut lines = BufReader::new(
        child
            .stdout
            .take()
            .ok_or_else(|| anyhow::anyhow!("stdout"))?,
    )
    .lines();
    let ready = lines.next().transpose()?.unwrap_or_default();
    anyhow::ensure!(ready.contains("ready"), "JS reader: {ready}");
    let t = Instant::now();
    writeln!(stdin, "{{\"cmd\":\"get\",\"path\":\"/big.bin\"}}")?;
    let line = lines.next().transpose()?.unwrap_or_default();
    let v: serde_json::Value = serde_json::from_str(&line)?;
    println!("js_read_s {:.2}", t.elapsed().as_secs_f64());
    let ok = v["hash"].as_str() == Some(want);
    println!("js_reader_byte_exact {ok}");
    drop(stdin);
    let _ = child.wait();
    anyhow::ensure!(ok, "JS read a different /big.bin: {line}");
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let work = PathBuf::from(
        args.get(1)
            .ok_or_else(|| anyhow::anyhow!("usage: WORKDIR [SIZE_MIB] [CHANGE_MIB] [PEER_JS]"))?,
    );
    let size: u64 = args.get(2).map_or(Ok(256), |s| s.parse())? * MIB;
    let change: u64 = args.get(3).map_or(Ok(1), |s| s.parse())? * MIB;
    let peer_js = args.get(4).map(PathBuf::from);
    let folder = work.join("src");
    std::fs::create_dir_all(&folder)?;
    let file = folder.join("big.bin");
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&file)?);
        write_noise(&mut f, 1, size)?;
        f.flush()?;
    }
    println!("size_mib {}", size / MIB);
    println!("change_mib {}", change / MIB);

    // Profiling: `CDC_BENCH_IMPORT_ONLY=true|false` runs only that import, three times.
    if let Ok(only) = std::env::var("CDC_BENCH_IMPORT_ONLY") {
        let chunking = only == "true";
        for round in 0..3 {
            let dir = work.join(format!("only-{round}"));
            let (_s, d) = open(&dir, chunking)?;
            let took = import(&folder, &d).await?;
            println!("import_only_{chunking}_s {:.2}", took.as_secs_f64());
            d.close();
            std::fs::remove_dir_all(&dir)?;
        }
        return Ok(());
    }

    // 1. New data, with and without chunking.
    let mut best = [Duration::MAX; 2];
    let mut cpu = [Duration::MAX; 2];
    for round in 0..5 {
        for (i, chunking) in [false, true].into_iter().enumerate() {
            let dir = work.join(format!("speed-{round}-{chunking}"));
            let (_s, d) = open(&dir, chunking)?;
            let c0 = cpu_time();
            let took = import(&folder, &d).await?;
            cpu[i] = cpu[i].min(cpu_time() - c0);
            best[i] = best[i].min(took);
            d.close();
            std::fs::remove_dir_all(&dir)?;
        }
    }
    let mbps = |d: Duration| size as f64 / MIB as f64 / d.as_secs_f64();
    println!("import_plain_mib_s {:.0}", mbps(best[0]));
    println!("import_chunked_mib_s {:.0}", mbps(best[1]));
    println!(
        "import_chunked_vs_plain {:.2}",
        best[0].as_secs_f64() / best[1].as_secs_f64()
    );
    println!("import_plain_cpu_s {:.2}", cpu[0].as_secs_f64());
    println!("import_chunked_cpu_s {:.2}", cpu[1].as_secs_f64());
    println!(
        "import_chunked_vs_plain_cpu {:.2}",
        cpu[0].as_secs_f64() / cpu[1].as_secs_f64()
    );

    // The writer (chunked) and a replica that downloads the first version over loopback.
    let (_ws, writer) = open(&work.join("writer"), true)?;
    import(&folder, &writer).await?;
    let v1_hash = file_hash(&file)?;
    let (_rs, reader) = {
        let store = Corestore::open(work.join("reader"))?;
        let mut opts = DriveOptions::default();
        opts.wait.timeout = Some(Duration::from_secs(120));
        let d = Hyperdrive::open_key(&store, writer.key(), opts)?;
        (store, d)
    };
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let accept = {
        let writer = writer.clone();
        tokio::spawn(async move {
            let mut muxes = Vec::new();
            while let Ok((tcp, _)) = listener.accept().await {
                let _ = tcp.set_nodelay(true);
                if let Ok(s) = SecretStream::accept(tcp, &Keypair::generate()).await {
                    muxes.push(writer.replicate_stream(s));
                }
            }
        })
    };
    let tcp = TcpStream::connect(("127.0.0.1", port)).await?;
    tcp.set_nodelay(true)?;
    let _mux = reader.replicate_stream(SecretStream::connect(tcp, &Keypair::generate()).await?);
    reader.wait_for_peers(1).await;
    let (first, took) = replica_fetch(&writer, &reader, &v1_hash).await?;
    println!(
        "replica_first_download_mib {:.1}",
        first as f64 / MIB as f64
    );
    println!("replica_first_download_s {:.2}", took.as_secs_f64());

    // 2 + 3. Changed in the middle, then inserted at the start.
    for (name, seed) in [("middle_change", 0x1234u64), ("start_insert", 0x5678)] {
        if name == "middle_change" {
            let mut f = std::fs::OpenOptions::new().write(true).open(&file)?;
            f.seek(SeekFrom::Start(size / 2))?;
            write_noise(&mut f, seed, change)?;
        } else {
            let tmp = folder.join("big.bin.new");
            {
                let mut out = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
                write_noise(&mut out, seed, change)?;
                std::io::copy(&mut std::fs::File::open(&file)?, &mut out)?;
                out.flush()?;
            }
            std::fs::rename(&tmp, &file)?;
        }
        let want = file_hash(&file)?;
        let before = blobs_bytes(&writer).await?;
        let took = import(&folder, &writer).await?;
        let appended = blobs_bytes(&writer).await? - before;
        let entry = writer
            .entry("/big.bin")
            .await?
            .ok_or_else(|| anyhow::anyhow!("no entry"))?;
        anyhow::ensure!(
            content_hash(&writer, "/big.bin").await? == want,
            "writer reads back wrong"
        );
        println!(
            "{name}_block_map {}",
            entry.blob.is_some_and(|b| b.block_map)
        );
        println!("{name}_reimport_s {:.2}", took.as_secs_f64());
        println!("{name}_appended_mib {:.2}", appended as f64 / MIB as f64);
        let (fetched, took) = replica_fetch(&writer, &reader, &want).await?;
        println!(
            "{name}_replica_download_mib {:.2}",
            fetched as f64 / MIB as f64
        );
        println!("{name}_replica_download_s {:.2}", took.as_secs_f64());
        if name == "start_insert" {
            if let Some(js) = &peer_js {
                let dir = work.join("js-reader");
                let key = writer.key();
                let want = want.clone();
                let js = js.clone();
                tokio::task::spawn_blocking(move || js_check(&js, &dir, key, port, &want))
                    .await??;
            }
        }
    }
    accept.abort();
    Ok(())
}
