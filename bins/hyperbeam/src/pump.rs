//! Stdin and stdout pumps: one thread each does the blocking reads or writes on a duplicate of the file
//! descriptor, and hands big buffers to and from the async side over channels, where the buffers are reused.
//!
//! Compared with `tokio::io::stdin()`/`stdout()`, which run every call on the blocking pool and copy through
//! an internal buffer, this saves a copy per byte and a thread hand-off per call, and keeps reads (and writes)
//! going while the async side encrypts and sends (decrypts and receives).

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::sync::mpsc as std_mpsc;
use std::thread;

use tokio::sync::mpsc;

/// A buffer and the number of bytes of it that are data.
pub type Chunk = (Vec<u8>, usize);

/// The reading end of the stdin pump.
#[derive(Debug)]
pub struct Input {
    full: mpsc::Receiver<io::Result<Chunk>>,
    empty: std_mpsc::SyncSender<Vec<u8>>,
}

/// Starts a thread reading stdin in chunks of up to `chunk` bytes, at most `in_flight` chunks ahead of the
/// consumer. The thread ends at end of file, on an error (delivered as the last item), or once the [`Input`]
/// is dropped and its next read returned; a read blocked on a terminal is not interrupted.
pub fn stdin(chunk: usize, in_flight: usize) -> io::Result<Input> {
    let mut file = File::from(io::stdin().as_fd().try_clone_to_owned()?);
    let (full_tx, full) = mpsc::channel(in_flight.max(1));
    let (empty, empty_rx) = std_mpsc::sync_channel::<Vec<u8>>(in_flight + 1);
    thread::Builder::new()
        .name("stdin".into())
        .spawn(move || loop {
            let mut buf = empty_rx.try_recv().unwrap_or_else(|_| vec![0; chunk]);
            let read = loop {
                match file.read(&mut buf) {
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    r => break r,
                }
            };
            let (end, item) = match read {
                Ok(0) => return,
                Ok(n) => (false, Ok((buf, n))),
                Err(e) => (true, Err(e)),
            };
            if full_tx.blocking_send(item).is_err() || end {
                return;
            }
        })?;
    Ok(Input { full, empty })
}

impl Input {
    /// The next chunk; `None` at end of input.
    pub async fn next(&mut self) -> Option<io::Result<Chunk>> {
        self.full.recv().await
    }

    /// True when no chunk is ready now (the next [`Input::next`] would wait).
    pub fn is_empty(&self) -> bool {
        self.full.is_empty()
    }

    /// Gives a buffer back for the thread to reuse.
    pub fn recycle(&self, buf: Vec<u8>) {
        let _ = self.empty.try_send(buf);
    }
}

/// The writing end of the stdout pump.
#[derive(Debug)]
pub struct Output {
    full: Option<mpsc::Sender<Chunk>>,
    empty: std_mpsc::Receiver<Vec<u8>>,
    thread: Option<thread::JoinHandle<io::Result<()>>>,
    chunk: usize,
}

/// Starts a thread writing to stdout the chunks given to [`Output::send`], at most `in_flight` behind.
pub fn stdout(chunk: usize, in_flight: usize) -> io::Result<Output> {
    let mut file = File::from(io::stdout().as_fd().try_clone_to_owned()?);
    let (full, mut full_rx) = mpsc::channel::<Chunk>(in_flight.max(1));
    let (empty_tx, empty) = std_mpsc::sync_channel::<Vec<u8>>(in_flight + 1);
    let thread = thread::Builder::new()
        .name("stdout".into())
        .spawn(move || {
            while let Some((buf, n)) = full_rx.blocking_recv() {
                file.write_all(buf.get(..n).unwrap_or(&buf))?;
                let _ = empty_tx.try_send(buf);
            }
            file.flush()
        })?;
    Ok(Output {
        full: Some(full),
        empty,
        thread: Some(thread),
        chunk,
    })
}

impl Output {
    /// A buffer of the chunk size to fill (a reused one when available).
    pub fn buffer(&self) -> Vec<u8> {
        self.empty
            .try_recv()
            .unwrap_or_else(|_| vec![0; self.chunk])
    }

    /// Queues the first `n` bytes of `buf` for writing. Fails with the thread's error once a write failed.
    pub async fn send(&mut self, buf: Vec<u8>, n: usize) -> io::Result<()> {
        let sent = match &self.full {
            Some(full) => full.send((buf, n)).await.is_ok(),
            None => false,
        };
        if sent {
            return Ok(());
        }
        // The thread is gone: only a failed write ends it early.
        match self.join().await {
            Err(e) => Err(e),
            Ok(()) => Err(io::Error::new(io::ErrorKind::BrokenPipe, "stdout closed")),
        }
    }

    /// Waits until everything queued was written.
    pub async fn finish(mut self) -> io::Result<()> {
        self.join().await
    }

    async fn join(&mut self) -> io::Result<()> {
        self.full = None;
        let Some(thread) = self.thread.take() else {
            return Ok(());
        };
        tokio::task::spawn_blocking(move || thread.join())
            .await
            .map_err(io::Error::other)?
            .map_err(|_| io::Error::other("the stdout thread panicked"))?
    }
}
