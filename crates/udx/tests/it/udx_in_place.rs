//! Writing into a UDX stream's send ring and reading out of its receive ring in place
//! ([`UdxStream::poll_write_with`], [`UdxStream::poll_read_with`]), over loopback: the bytes arrive whole and in
//! order through rings that wrap many times, a writer waiting for room is woken, and a reader waiting for more
//! bytes than are buffered is woken when they come.

use std::future::poll_fn;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use holepunch_udx::{UdxSocket, UdxStream, HIGH_WATERMARK};
use tokio::io::AsyncWriteExt;

const LOOPBACK: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0));
const LIMIT: Duration = Duration::from_secs(30);

fn pattern(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(13) ^ (i >> 13) as u8)
        .collect()
}

/// Writes `data` in place in pieces of the given sizes (cycled), each waiting for room for all of it, or for
/// [`HIGH_WATERMARK`] bytes when it is larger (then writing what fits).
async fn write_in_place(x: &UdxStream, data: &[u8], pieces: &[usize]) {
    let mut at = 0;
    let mut i = 0;
    while at < data.len() {
        let want = pieces[i % pieces.len()].min(data.len() - at);
        let n = poll_fn(|cx| {
            x.poll_write_with(cx, want, |room| {
                assert!(
                    room.capacity() >= want.min(HIGH_WATERMARK),
                    "room for what was asked"
                );
                let n = want.min(room.capacity());
                let (a, b) = room.reserve(n).expect("reserve");
                assert_eq!(a.len() + b.len(), n);
                let (da, db) = data[at..at + n].split_at(a.len());
                a.copy_from_slice(da);
                b.copy_from_slice(db);
                assert!(room.reserve(0).is_none());
                n
            })
        })
        .await
        .expect("write in place");
        at += n;
        i += 1;
    }
    let mut x = x;
    x.shutdown().await.expect("end");
}

/// Reads in place in units of `unit` bytes (fewer only at the end), waiting while fewer are buffered.
async fn read_in_place(y: &UdxStream, unit: usize) -> Vec<u8> {
    let mut got = Vec::new();
    loop {
        let done = poll_fn(|cx| {
            y.poll_read_with(cx, |r| {
                let have = r.first.len() + r.second.len();
                assert!(unit <= r.window / 2);
                if have < unit && !r.ended {
                    return None;
                }
                let n = have.min(unit);
                let from_first = n.min(r.first.len());
                got.extend_from_slice(&r.first[..from_first]);
                got.extend_from_slice(&r.second[..n - from_first]);
                Some((n, r.ended && n == have))
            })
        })
        .await
        .expect("read in place");
        if done {
            return got;
        }
    }
}

async fn connected() -> (UdxSocket, UdxSocket, UdxStream, UdxStream) {
    let a = UdxSocket::bind(LOOPBACK).await.expect("bind a");
    let b = UdxSocket::bind(LOOPBACK).await.expect("bind b");
    let x = a.create_stream(1).expect("x");
    let y = b.create_stream(2).expect("y");
    x.connect(2, b.local_addr()).expect("connect x");
    y.connect(1, a.local_addr()).expect("connect y");
    (a, b, x, y)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_written_and_read_in_place_arrive_whole() {
    let (_a, _b, x, y) = connected().await;
    let data = pattern(12 << 20);
    let (_, got) = tokio::time::timeout(LIMIT, async {
        tokio::join!(
            write_in_place(&x, &data, &[65_556, 1, 200_000, 4_097, 300_000]),
            read_in_place(&y, 70_001)
        )
    })
    .await
    .expect("in time");
    assert!(
        got == data,
        "{} of {} bytes, or different",
        got.len(),
        data.len()
    );
    // Both sides ended: the stream closes cleanly.
    let mut end = &y;
    end.shutdown().await.expect("end y");
    tokio::time::timeout(LIMIT, x.closed())
        .await
        .expect("in time")
        .expect("closed cleanly");
}

#[tokio::test]
async fn in_place_and_ordinary_calls_mix() {
    use tokio::io::AsyncReadExt;
    let (_a, _b, x, y) = connected().await;
    let data = pattern(3 << 20);
    let (half, rest) = data.split_at(data.len() / 2);
    let send = async {
        (&x).write_all(&half[..1000]).await.expect("write");
        poll_fn(|cx| {
            x.poll_write_with(cx, 1, |room| {
                let (a, b) = room.reserve(1000).expect("reserve");
                let (da, db) = half[1000..2000].split_at(a.len());
                a.copy_from_slice(da);
                b.copy_from_slice(db);
            })
        })
        .await
        .expect("write in place");
        (&x).write_all(&half[2000..]).await.expect("write");
        write_in_place(&x, rest, &[100_000]).await;
    };
    let recv = async {
        let mut first = vec![0u8; 500_000];
        (&y).read_exact(&mut first).await.expect("read");
        let mut got = first;
        got.extend(read_in_place(&y, 1 << 20).await);
        got
    };
    let ((), got) = tokio::time::timeout(LIMIT, async { tokio::join!(send, recv) })
        .await
        .expect("in time");
    assert!(got == data, "{} of {} bytes", got.len(), data.len());
}

#[tokio::test]
async fn a_closed_stream_refuses_writes_in_place() {
    let (_a, _b, x, _y) = connected().await;
    x.destroy();
    let r = poll_fn(|cx| x.poll_write_with(cx, 1, |_| ())).await;
    assert!(r.is_err(), "a destroyed stream refuses");
    let r = poll_fn(|cx| x.poll_read_with(cx, |r| Some((0, r.ended)))).await;
    assert_eq!(r.ok(), Some(true), "a destroyed stream reads as ended");
}

/// A writer asking for more room than [`HIGH_WATERMARK`] is served once that much is free: with nothing written
/// yet the room is the high watermark plus the initial send window (less than a MiB), and it would not grow
/// while nothing flows (the writer waited forever; the pieces of 300,000 bytes above hung 2 runs in 20 when
/// the stream's window had shrunk with nothing in flight).
#[tokio::test]
async fn a_writer_asking_for_more_than_the_high_watermark_is_served() {
    let (_a, _b, x, _y) = connected().await;
    let room = tokio::time::timeout(
        LIMIT,
        poll_fn(|cx| x.poll_write_with(cx, 4 << 20, |room| room.capacity())),
    )
    .await
    .expect("served in time")
    .expect("ready");
    assert!(
        (HIGH_WATERMARK..4 << 20).contains(&room),
        "room {room} with nothing written"
    );
}
