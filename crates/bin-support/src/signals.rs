//! The signals that end a tool: SIGINT (Ctrl-C) and SIGTERM, and SIGHUP for the tools that handle it.
//!
//! [`Signals`] installs the handlers when created (inside the runtime), so a signal that comes between two
//! waits is not lost, and [`Signals::recv`] tells which one came. What a tool does with it is its own
//! behaviour, kept from the JS twin: most end cleanly and exit 0 (hyperdht, hypertele, hypertele-server,
//! hypershell-server, hypershell `-L`, hyperbeam's first Ctrl-C, hyperssh-fuse once unmounted); hyperbeam
//! exits at once with 128 + the signal number for a second one ([`Signal::exit_code`], [`crate::Killed`]).

use std::process::ExitCode;

/// A signal a tool listens to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Signal {
    /// SIGINT (2): Ctrl-C in the terminal.
    Interrupt,
    /// SIGTERM (15): `kill`, service managers.
    Terminate,
    /// SIGHUP (1): the terminal went away.
    Hangup,
}

impl Signal {
    /// SIGINT and SIGTERM, what most tools end on.
    pub const INT_TERM: [Signal; 2] = [Signal::Interrupt, Signal::Terminate];

    /// The signal's number (the same on every unix).
    pub const fn number(self) -> i32 {
        match self {
            Signal::Hangup => 1,
            Signal::Interrupt => 2,
            Signal::Terminate => 15,
        }
    }

    /// The signal's name (`SIGINT`, ...).
    pub const fn name(self) -> &'static str {
        match self {
            Signal::Hangup => "SIGHUP",
            Signal::Interrupt => "SIGINT",
            Signal::Terminate => "SIGTERM",
        }
    }

    /// The exit status a shell reports for a process killed by this signal: 128 + its number.
    pub const fn exit_status(self) -> u8 {
        // Every number above is below 128.
        128 + self.number() as u8
    }

    /// [`exit_status`](Self::exit_status) as an [`ExitCode`].
    pub fn exit_code(self) -> ExitCode {
        ExitCode::from(self.exit_status())
    }

    #[cfg(unix)]
    fn kind(self) -> tokio::signal::unix::SignalKind {
        use tokio::signal::unix::SignalKind;
        match self {
            Signal::Hangup => SignalKind::hangup(),
            Signal::Interrupt => SignalKind::interrupt(),
            Signal::Terminate => SignalKind::terminate(),
        }
    }
}

impl std::fmt::Display for Signal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Handlers for a set of signals, installed when created: from then on those signals no longer kill the
/// process but wake [`recv`](Self::recv).
#[derive(Debug)]
pub struct Signals {
    #[cfg(unix)]
    streams: Vec<(Signal, tokio::signal::unix::Signal)>,
    #[cfg(not(unix))]
    interrupt: bool,
}

impl Signals {
    /// Installs the handlers of SIGINT and SIGTERM (call inside the runtime).
    pub fn listen() -> anyhow::Result<Self> {
        Self::listen_to(&Signal::INT_TERM)
    }

    /// Installs the handlers of `signals`, in that order (call inside the runtime). An error names the signal
    /// (`installing the SIGTERM handler: ...`).
    pub fn listen_to(signals: &[Signal]) -> anyhow::Result<Self> {
        #[cfg(unix)]
        {
            use anyhow::Context;
            let mut streams = Vec::with_capacity(signals.len());
            for &s in signals {
                let stream = tokio::signal::unix::signal(s.kind())
                    .with_context(|| format!("installing the {s} handler"))?;
                streams.push((s, stream));
            }
            Ok(Self { streams })
        }
        #[cfg(not(unix))]
        Ok(Self {
            interrupt: signals.contains(&Signal::Interrupt),
        })
    }

    /// Waits for the next of the signals and says which one came. Cancel-safe: use it in `select!` loops.
    /// Never resolves when listening to no signal.
    pub async fn recv(&mut self) -> Signal {
        #[cfg(unix)]
        {
            std::future::poll_fn(|cx| {
                for (signal, stream) in &mut self.streams {
                    // `Ready(None)` (the runtime is going away) ends the wait too.
                    if stream.poll_recv(cx).is_ready() {
                        return std::task::Poll::Ready(*signal);
                    }
                }
                std::task::Poll::Pending
            })
            .await
        }
        #[cfg(not(unix))]
        {
            if !self.interrupt {
                return std::future::pending().await;
            }
            let _ = tokio::signal::ctrl_c().await;
            Signal::Interrupt
        }
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_exit_statuses() {
        assert_eq!(Signal::Interrupt.number(), libc::SIGINT);
        assert_eq!(Signal::Terminate.number(), libc::SIGTERM);
        assert_eq!(Signal::Hangup.number(), libc::SIGHUP);
        assert_eq!(Signal::Interrupt.exit_status(), 130);
        assert_eq!(Signal::Terminate.exit_status(), 143);
        assert_eq!(Signal::Hangup.exit_status(), 129);
        assert_eq!(Signal::Interrupt.exit_code(), ExitCode::from(130));
        assert_eq!(Signal::Terminate.to_string(), "SIGTERM");
    }

    /// Sends `signal` to this process. The handlers are installed first, so the process survives it.
    fn raise(signal: Signal) {
        // SAFETY: kill(2) with our own pid and a valid signal number; it only sends the signal.
        let r = unsafe { libc::kill(libc::getpid(), signal.number()) };
        assert_eq!(r, 0, "kill");
    }

    // One test raises all three, one after another: signals go to the whole process, so two tests raising
    // concurrently would wake each other's listeners.
    #[tokio::test]
    async fn tells_which_signal_came() -> anyhow::Result<()> {
        let mut all = Signals::listen_to(&[Signal::Interrupt, Signal::Terminate, Signal::Hangup])?;
        for s in [Signal::Terminate, Signal::Interrupt, Signal::Hangup] {
            raise(s);
            assert_eq!(all.recv().await, s);
        }
        // A signal raised before the wait is not lost.
        let mut int_term = Signals::listen()?;
        raise(Signal::Interrupt);
        tokio::task::yield_now().await;
        assert_eq!(int_term.recv().await, Signal::Interrupt);
        assert_eq!(all.recv().await, Signal::Interrupt);
        Ok(())
    }
}
