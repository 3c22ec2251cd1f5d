//! The `hypershell` channel: the server spawns the command in a pseudo-terminal and relays it; the
//! client relays its terminal (raw mode, resizes) and exits with the remote exit code.

use std::io::{Read, Write};

use anyhow::Context;
use holepunch::compact_encoding::{Decode, Encode};
use holepunch::hypershell::{
    decode_buffer, decode_uint, encode_buffer, encode_uint, shell_message as msg, Resize,
    SpawnHandshake, PROTOCOL_SHELL,
};
use holepunch::protomux::{Channel, ChannelOptions, Mux, ProtomuxError};
use portable_pty::{native_pty_system, CommandBuilder, PtySize};
use tokio::sync::mpsc;

/// The shell the server runs when the client names no command: `$SHELL`, else `bash`.
pub fn default_shell() -> String {
    std::env::var("SHELL")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "bash".into())
}

fn pty_size(width: u64, height: u64) -> PtySize {
    let clamp = |v: u64, d: u16| {
        if v == 0 {
            d
        } else {
            u16::try_from(v).unwrap_or(u16::MAX)
        }
    };
    PtySize {
        rows: clamp(height, 24),
        cols: clamp(width, 80),
        pixel_width: 0,
        pixel_height: 0,
    }
}

/// Serves one `hypershell` channel (already accepted): spawns, relays, sends the exit code, closes.
pub async fn serve(channel: Channel) -> anyhow::Result<()> {
    let handshake = channel.opened().await?;
    channel.open(&SpawnHandshake::default().to_bytes())?;
    let spawn = SpawnHandshake::from_bytes(&handshake).unwrap_or_default();
    match spawn_pty(&spawn) {
        Ok(p) => relay(&channel, p).await,
        Err(e) => {
            let _ = channel.send(msg::EXIT_CODE, &encode_uint(1)).await;
            let _ = channel
                .send(
                    msg::STDERR,
                    &encode_buffer(format!("Error: {e:#}\n").as_bytes()),
                )
                .await;
            channel.close();
            Ok(())
        }
    }
}

struct Spawned {
    master: Box<dyn portable_pty::MasterPty + Send>,
    child: Box<dyn portable_pty::Child + Send + Sync>,
    reader: Box<dyn Read + Send>,
    writer: Box<dyn Write + Send>,
}

fn spawn_pty(spawn: &SpawnHandshake) -> anyhow::Result<Spawned> {
    let pair = native_pty_system()
        .openpty(pty_size(spawn.width, spawn.height))
        .context("opening a pseudo-terminal")?;
    let program = if spawn.command.is_empty() {
        default_shell()
    } else {
        spawn.command.clone()
    };
    let mut cmd = CommandBuilder::new(&program);
    cmd.args(&spawn.args);
    cmd.cwd(crate::keys::home_dir());
    let child = pair
        .slave
        .spawn_command(cmd)
        .with_context(|| format!("spawn {program}"))?;
    // The child holds the terminal now; our copy of the slave would keep the output open after it exits.
    drop(pair.slave);
    let reader = pair
        .master
        .try_clone_reader()
        .context("reading the pseudo-terminal")?;
    let writer = pair
        .master
        .take_writer()
        .context("writing the pseudo-terminal")?;
    Ok(Spawned {
        master: pair.master,
        child,
        reader,
        writer,
    })
}

async fn relay(channel: &Channel, p: Spawned) -> anyhow::Result<()> {
    let Spawned {
        master,
        mut child,
        mut reader,
        mut writer,
    } = p;
    let mut killer = child.clone_killer();
    // Output: a blocking reader thread.
    let (out_tx, mut out_rx) = mpsc::channel::<Vec<u8>>(16);
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match reader.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if out_tx
                        .blocking_send(buf.get(..n).unwrap_or_default().to_vec())
                        .is_err()
                    {
                        break;
                    }
                }
            }
        }
    });
    // Input: a blocking writer thread.
    let (in_tx, in_rx) = std::sync::mpsc::channel::<Vec<u8>>();
    std::thread::spawn(move || {
        for data in in_rx {
            if writer
                .write_all(&data)
                .and_then(|()| writer.flush())
                .is_err()
            {
                break;
            }
        }
    });
    // Exit status: a blocking waiter thread.
    let (exit_tx, mut exit_rx) = mpsc::channel::<u32>(1);
    std::thread::spawn(move || {
        let code = child.wait().map_or(1, |s| s.exit_code());
        let _ = exit_tx.blocking_send(code);
    });

    let mut exit_code = None;
    let mut output_done = false;
    let mut remote_closed = false;
    while !(output_done && exit_code.is_some()) {
        tokio::select! {
            out = out_rx.recv(), if !output_done => match out {
                Some(data) => channel.send(msg::STDOUT, &encode_buffer(&data)).await?,
                None => output_done = true,
            },
            code = exit_rx.recv(), if exit_code.is_none() => {
                let code = code.unwrap_or(1);
                exit_code = Some(code);
                channel.send(msg::EXIT_CODE, &encode_uint(u64::from(code))).await?;
            }
            m = channel.recv() => match m {
                Some((msg::STDIN, payload)) => {
                    if let Ok(data) = decode_buffer(&payload) {
                        let _ = in_tx.send(data.to_vec());
                    }
                }
                Some((msg::RESIZE, payload)) => {
                    if let Ok(r) = Resize::from_bytes(&payload) {
                        let _ = master.resize(pty_size(r.width, r.height));
                    }
                }
                Some(_) => {}
                None => {
                    remote_closed = true;
                    break;
                }
            },
        }
    }
    if remote_closed {
        let _ = killer.kill();
    }
    channel.close();
    Ok(())
}

/// The local terminal size, 80x24 when stdout is not a terminal.
pub fn terminal_size() -> (u64, u64) {
    use std::io::IsTerminal;
    if std::io::stdout().is_terminal() {
        if let Ok((w, h)) = crossterm::terminal::size() {
            if w > 0 && h > 0 {
                return (u64::from(w), u64::from(h));
            }
        }
    }
    (80, 24)
}

/// Restores the terminal mode on drop.
struct RawMode(bool);

impl RawMode {
    fn enable() -> Self {
        use std::io::IsTerminal;
        Self(std::io::stdin().is_terminal() && crossterm::terminal::enable_raw_mode().is_ok())
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if self.0 {
            let _ = crossterm::terminal::disable_raw_mode();
        }
    }
}

/// Runs `command` (empty: the server's shell) on the server behind `mux`, relaying this terminal.
/// Returns the remote exit code (1 if none came).
pub async fn run_client(mux: &Mux, command: &[String]) -> anyhow::Result<u32> {
    let channel = mux
        .create_channel(ChannelOptions::new(PROTOCOL_SHELL))
        .context("the connection closed")?;
    let (width, height) = terminal_size();
    let mut args = command.iter().cloned();
    let spawn = SpawnHandshake {
        command: args.next().unwrap_or_default(),
        args: args.collect(),
        width,
        height,
    };
    channel.open(&spawn.to_bytes())?;
    match channel.opened().await {
        Ok(_) => {}
        Err(ProtomuxError::Rejected) => {
            anyhow::bail!("the server does not serve shells (protocol {PROTOCOL_SHELL} refused)")
        }
        Err(e) => return Err(anyhow::Error::from(e).context("opening the shell channel")),
    }

    let raw = RawMode::enable();
    // Stdin: a blocking reader thread (a read of stdin cannot be cancelled; the runtime does not wait for it).
    let (in_tx, mut in_rx) = mpsc::channel::<Vec<u8>>(16);
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin();
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match stdin.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if in_tx
                        .blocking_send(buf.get(..n).unwrap_or_default().to_vec())
                        .is_err()
                    {
                        break;
                    }
                }
            }
        }
    });
    #[cfg(unix)]
    let mut winch = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change())
        .context("installing the SIGWINCH handler")?;
    let mut stdin_open = true;
    let mut exit_code = None;
    let mut stdout = std::io::stdout();
    let mut stderr = std::io::stderr();
    loop {
        #[cfg(unix)]
        let resized = winch.recv();
        #[cfg(not(unix))]
        let resized = std::future::pending::<Option<()>>();
        tokio::select! {
            m = channel.recv() => match m {
                Some((msg::STDOUT, p)) => {
                    if let Ok(d) = decode_buffer(&p) {
                        stdout.write_all(d)?;
                        stdout.flush()?;
                    }
                }
                Some((msg::STDERR, p)) => {
                    if let Ok(d) = decode_buffer(&p) {
                        stderr.write_all(d)?;
                        stderr.flush()?;
                    }
                }
                Some((msg::EXIT_CODE, p)) => exit_code = decode_uint(&p).ok(),
                Some(_) => {}
                None => break,
            },
            data = in_rx.recv(), if stdin_open => match data {
                Some(d) => channel.send(msg::STDIN, &encode_buffer(&d)).await?,
                None => stdin_open = false,
            },
            _ = resized => {
                let (width, height) = terminal_size();
                channel.send_encoded(msg::RESIZE, &Resize { width, height }).await?;
            }
        }
    }
    drop(raw);
    match exit_code {
        Some(c) => Ok(u32::try_from(c).unwrap_or(u32::MAX)),
        // The channel ended without the command's exit code: the server went away or the connection was
        // lost (its host changed address or went offline and the keep-alive gave up).
        None => Err(anyhow::anyhow!(
            "the connection to the server was lost before the command exited"
        )),
    }
}
