//! The async protomux API over an in-memory transport and over a secret-stream on an in-memory duplex.

use std::time::{Duration, Instant};

use holepunch_streams::noise::Keypair;
use holepunch_streams::protomux::{memory_pair, ChannelOptions, Mux, ProtomuxError};
use holepunch_streams::secret_stream::SecretStream;
use holepunch_wire::compact_encoding::{Encode, Writer};

const LIMIT: Duration = Duration::from_secs(60);

#[tokio::test]
async fn echo_pairing_and_close() {
    tokio::time::timeout(LIMIT, async {
        let (ta, tb) = memory_pair();
        let (a, b) = (Mux::new(ta), Mux::new(tb));
        let mut pairing = b.pair("hypershell", None);
        let server = tokio::spawn(async move {
            let incoming = pairing.next().await.expect("request");
            assert_eq!(incoming.id(), Some(&b"key"[..]));
            let ch = incoming.accept_default().expect("accept");
            ch.open(b"server").expect("open");
            while let Some((kind, msg)) = ch.recv().await {
                ch.send(kind, &msg).await.expect("echo");
            }
            // a closed it
            assert!(ch.closed().await);
        });
        let ch = a
            .create_channel(ChannelOptions::new("hypershell").id(b"key".to_vec()))
            .expect("channel");
        ch.open(b"client").expect("open");
        assert_eq!(ch.opened().await.expect("opened"), b"server");
        assert!(a.opened("hypershell", Some(b"key")));
        for i in 0..100u32 {
            ch.send(u64::from(i % 3), &i.to_le_bytes())
                .await
                .expect("send");
        }
        for i in 0..100u32 {
            assert_eq!(
                ch.recv().await,
                Some((u64::from(i % 3), i.to_le_bytes().to_vec()))
            );
        }
        // a compact-encoded message (here a dht-rpc style struct would do the same)
        struct Pair(u64, String);
        impl Encode for Pair {
            fn encode(&self, w: &mut Writer) {
                w.uint(self.0).string(&self.1);
            }
        }
        ch.send_encoded(2, &Pair(1000, "x".into()))
            .await
            .expect("send");
        let (kind, bytes) = ch.recv().await.expect("echo");
        assert_eq!((kind, bytes), (2, vec![0xfd, 0xe8, 0x03, 1, b'x']));
        ch.close();
        assert_eq!(ch.recv().await, None);
        server.await.expect("server");
        assert!(!a.opened("hypershell", Some(b"key")));
        assert!(a.is_idle());
    })
    .await
    .expect("in time");
}

#[tokio::test]
async fn rejected_and_dropped() {
    tokio::time::timeout(LIMIT, async {
        let (ta, tb) = memory_pair();
        let (a, b) = (Mux::new(ta), Mux::new(tb));
        // nobody pairs it
        let ch = a
            .create_channel(ChannelOptions::new("nope"))
            .expect("channel");
        ch.open(b"").expect("open");
        assert_eq!(ch.opened().await, Err(ProtomuxError::Rejected));
        assert_eq!(ch.recv().await, None);
        // a pair request dropped without accepting rejects too
        let mut pairing = b.pair("maybe", None);
        let ch = a
            .create_channel(ChannelOptions::new("maybe"))
            .expect("channel");
        ch.open(b"").expect("open");
        drop(pairing.next().await.expect("request"));
        assert_eq!(ch.opened().await, Err(ProtomuxError::Rejected));
        // unique
        let x = a.create_channel(ChannelOptions::new("u")).expect("u");
        x.open(b"").expect("open");
        assert!(a.create_channel(ChannelOptions::new("u")).is_none());
        // dropping a channel closes it on both sides
        let y = b.create_channel(ChannelOptions::new("u")).expect("u");
        y.open(b"").expect("open");
        x.opened().await.expect("x opened");
        y.opened().await.expect("y opened");
        drop(x);
        assert!(y.closed().await);
        // destroying a mux ends the other side's channels
        let z1 = a.create_channel(ChannelOptions::new("z")).expect("z");
        let z2 = b.create_channel(ChannelOptions::new("z")).expect("z");
        z1.open(b"").expect("open");
        z2.open(b"").expect("open");
        z2.opened().await.expect("z opened");
        a.destroy();
        assert_eq!(a.closed().await, None);
        assert!(z2.closed().await);
        assert!(b.closed().await.is_none());
        assert!(z1.send(0, b"x").await.is_err());
    })
    .await
    .expect("in time");
}

/// Hypercore-style: one channel per core on one connection, each opened from both sides.
#[tokio::test]
async fn many_channels_one_connection() {
    tokio::time::timeout(LIMIT, async {
        let (ta, tb) = memory_pair();
        let (a, b) = (Mux::new(ta), Mux::new(tb));
        let n = 200u32;
        let mut chans = Vec::new();
        for i in 0..n {
            let key = i.to_be_bytes().to_vec();
            let ca = a
                .create_channel(ChannelOptions::new("hypercore/alpha").id(key.clone()))
                .expect("a");
            let cb = b
                .create_channel(ChannelOptions::new("hypercore/alpha").id(key))
                .expect("b");
            ca.open(&i.to_le_bytes()).expect("open");
            cb.open(b"").expect("open");
            chans.push((ca, cb));
        }
        a.cork();
        for (i, (ca, _)) in chans.iter().enumerate() {
            ca.send(1, &(i as u32).to_le_bytes()).await.expect("send");
        }
        a.uncork();
        for (i, (ca, cb)) in chans.iter().enumerate() {
            assert_eq!(cb.opened().await.expect("opened"), (i as u32).to_le_bytes());
            ca.opened().await.expect("opened");
            assert_eq!(
                cb.recv().await,
                Some((1, (i as u32).to_le_bytes().to_vec()))
            );
        }
    })
    .await
    .expect("in time");
}

/// Bulk transfer over a secret-stream (in-memory duplex), with backpressure; prints the throughput.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_over_secret_stream() {
    tokio::time::timeout(LIMIT, async {
        let (x, y) = tokio::io::duplex(256 * 1024);
        let (ka, kb) = (Keypair::from_seed(&[1; 32]), Keypair::from_seed(&[2; 32]));
        let (sa, sb) = tokio::join!(SecretStream::connect(x, &ka), SecretStream::accept(y, &kb));
        let (a, b) = (Mux::new(sa.expect("a")), Mux::new(sb.expect("b")));
        let ca = a.create_channel(ChannelOptions::new("bulk")).expect("a");
        let cb = b.create_channel(ChannelOptions::new("bulk")).expect("b");
        ca.open(b"").expect("open");
        cb.open(b"").expect("open");
        ca.opened().await.expect("opened");
        const TOTAL: usize = 32 * 1024 * 1024;
        let chunk = vec![0x5a; 64 * 1024];
        let start = Instant::now();
        let reader = tokio::spawn(async move {
            let mut got = 0;
            while got < TOTAL {
                let (_, m) = cb.recv().await.expect("message");
                got += m.len();
            }
            got
        });
        let mut sent = 0;
        while sent < TOTAL {
            ca.send(0, &chunk).await.expect("send");
            sent += chunk.len();
        }
        assert_eq!(reader.await.expect("reader"), TOTAL);
        let secs = start.elapsed().as_secs_f64();
        println!(
            "protomux over secret-stream: {} MiB in {secs:.2}s = {:.0} MiB/s",
            TOTAL >> 20,
            (TOTAL >> 20) as f64 / secs
        );
    })
    .await
    .expect("in time");
}

/// The driver stops reading while receive queues or unpaired buffers are full, and resumes when they
/// drain: nothing is lost and nothing stalls.
#[tokio::test]
async fn read_pauses_and_resumes() {
    tokio::time::timeout(LIMIT, async {
        let (ta, tb) = memory_pair();
        let a = Mux::new(ta);
        let (b, mut pairing) = Mux::new_with(tb, |m| m.pair("late", None));
        // 1. messages for an open nobody has paired yet (> 32 KiB buffered)
        let ca = a.create_channel(ChannelOptions::new("late")).expect("a");
        ca.open(b"").expect("open");
        for i in 0..100u32 {
            ca.send(0, &[i as u8; 1000]).await.expect("send");
        }
        let incoming = pairing.next().await.expect("request");
        // let the driver reach its pause before pairing
        tokio::task::yield_now().await;
        let cb = incoming.accept_default().expect("accept");
        cb.open(b"").expect("open");
        for i in 0..100u32 {
            assert_eq!(cb.recv().await, Some((0, vec![i as u8; 1000])));
        }
        // 2. 8 MiB into a channel nobody reads for a while (> the 4 MiB receive high-water mark)
        let chunk = vec![7u8; 64 * 1024];
        for _ in 0..128 {
            ca.send(1, &chunk).await.expect("send");
        }
        ca.send(2, b"last").await.expect("send");
        tokio::task::yield_now().await;
        for _ in 0..128 {
            assert_eq!(cb.recv().await, Some((1, chunk.clone())));
        }
        assert_eq!(cb.recv().await, Some((2, b"last".to_vec())));
        drop(b);
    })
    .await
    .expect("in time");
}
