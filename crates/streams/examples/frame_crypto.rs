//! CPU cost of the secret stream's framing crypto alone (no I/O): CPU seconds per GiB to encrypt frames and to
//! decrypt them in place, for one message size. CPU time of this thread (`/proc/thread-self/schedstat`), so a
//! loaded machine changes the figures little. `HOLEPUNCH_NO_OPENSSL=1` measures the RustCrypto code.
//!
//!     cargo run --release -p holepunch-streams --example frame_crypto -- [MESSAGE_BYTES] [MIB]
use holepunch_streams::secret_stream::{frame_size, Decryptor, Encryptor};

/// Nanoseconds this thread has run on a CPU.
fn cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|n| n.parse().ok()))
        .unwrap_or(0)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let msg: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(65536);
    let mib: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1024);
    let key = [7u8; 32];
    let mut enc = Encryptor::with_header_for_testing(&key, [9u8; 24]);
    let mut dec = Decryptor::new(&key, enc.header());
    let message = vec![0x5au8; msg];
    let batch = (4 << 20) / msg.max(1) + 1;
    let mut frames = vec![vec![0u8; frame_size(msg)]; batch];
    let rounds = ((mib << 20) / msg.max(1)).div_ceil(batch);
    let (mut t_enc, mut t_dec) = (0u64, 0u64);
    for _ in 0..rounds {
        let t = cpu_ns();
        for frame in frames.iter_mut() {
            enc.encrypt_frame_into(&message, frame).expect("encrypt");
        }
        let u = cpu_ns();
        for frame in frames.iter_mut() {
            dec.decrypt_in_place(frame.get_mut(3..).expect("frame"))
                .expect("decrypt");
        }
        t_dec += cpu_ns() - u;
        t_enc += u - t;
    }
    let bytes = (rounds * batch * msg) as f64;
    let gib = bytes / (1u64 << 30) as f64;
    let (e, d) = (t_enc as f64 / 1e9, t_dec as f64 / 1e9);
    println!(
        "message {msg} B: encrypt {:.3} CPU s/GiB ({:.0} MB/s of CPU), decrypt {:.3} CPU s/GiB ({:.0} MB/s)",
        e / gib,
        bytes / e / 1e6,
        d / gib,
        bytes / d / 1e6
    );
}
