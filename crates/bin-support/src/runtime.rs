//! The tokio runtime a tool runs on, and how it is shut down at exit. Each tool keeps the runtime it has
//! always had:
//!
//! - one thread ([`Flavor::CurrentThread`]): hyperdht, hyperbeam, hypershell, hypershell-copy;
//! - a fixed pool ([`Flavor::MultiThread`]): hypershell-server and drives (2 workers);
//! - one thread unless an environment variable asks for more ([`Flavor::ThreadsFromEnv`]): hypertele,
//!   hypertele-server, hyperssh and hyperssh-fuse with `HYPERTELE_THREADS=N`.

use std::future::Future;
use std::time::Duration;

use tokio::runtime::{Builder, Runtime};

/// Which runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// Everything on the main thread.
    CurrentThread,
    /// A multi-threaded runtime with this many worker threads.
    MultiThread(usize),
    /// One thread, unless the variable holds a number N > 1: then a multi-threaded runtime with N workers.
    /// (A proxy's work per byte is a chain of tasks handing data to each other; on one thread those
    /// hand-offs are plain queue pushes, while a multi-threaded runtime wakes parked workers for many of
    /// them: hypertele measured about 15% less CPU per byte on one thread.)
    ThreadsFromEnv(&'static str),
}

impl Flavor {
    /// The worker threads this flavour asks for given the variable's value (`env`, for
    /// [`ThreadsFromEnv`](Self::ThreadsFromEnv)): `None` for a current-thread runtime.
    pub fn workers(self, env: Option<&str>) -> Option<usize> {
        match self {
            Flavor::CurrentThread => None,
            Flavor::MultiThread(n) => Some(n),
            Flavor::ThreadsFromEnv(_) => env
                .and_then(|v| v.trim().parse::<usize>().ok())
                .filter(|n| *n > 1),
        }
    }

    /// Builds the runtime (timers and I/O enabled).
    pub fn build(self) -> std::io::Result<Runtime> {
        let env = match self {
            Flavor::ThreadsFromEnv(name) => std::env::var(name).ok(),
            _ => None,
        };
        match self.workers(env.as_deref()) {
            Some(n) => Builder::new_multi_thread()
                .worker_threads(n)
                .enable_all()
                .build(),
            None => Builder::new_current_thread().enable_all().build(),
        }
    }
}

/// What to wait for when the runtime goes away after the tool's future is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shutdown {
    /// Wait for every task and blocking thread (dropping the runtime).
    Wait,
    /// Wait at most this long.
    Timeout(Duration),
    /// Do not wait: a thread blocked in a read of stdin cannot be cancelled.
    Background,
}

/// Builds the runtime, runs `future` on it to completion, then shuts the runtime down as `shutdown` says. A
/// runtime that cannot be built is an error of the run (exit 1).
pub fn run<T>(
    flavor: Flavor,
    shutdown: Shutdown,
    future: impl Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    let runtime = flavor.build()?;
    let result = runtime.block_on(future);
    match shutdown {
        Shutdown::Wait => drop(runtime),
        Shutdown::Timeout(limit) => runtime.shutdown_timeout(limit),
        Shutdown::Background => runtime.shutdown_background(),
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workers() {
        assert_eq!(Flavor::CurrentThread.workers(Some("4")), None);
        assert_eq!(Flavor::MultiThread(2).workers(None), Some(2));
        let env = Flavor::ThreadsFromEnv("TEST_THREADS");
        assert_eq!(env.workers(None), None);
        assert_eq!(env.workers(Some("1")), None);
        assert_eq!(env.workers(Some("0")), None);
        assert_eq!(env.workers(Some("x")), None);
        assert_eq!(env.workers(Some(" 3 ")), Some(3));
    }

    #[test]
    fn runs_on_each_flavor() -> anyhow::Result<()> {
        let on_runtime = async { Ok(tokio::runtime::Handle::current().runtime_flavor()) };
        use tokio::runtime::RuntimeFlavor;
        let got = run(Flavor::CurrentThread, Shutdown::Wait, on_runtime)?;
        assert_eq!(got, RuntimeFlavor::CurrentThread);
        let got = run(
            Flavor::MultiThread(2),
            Shutdown::Timeout(Duration::from_secs(1)),
            async { Ok(tokio::runtime::Handle::current().runtime_flavor()) },
        )?;
        assert_eq!(got, RuntimeFlavor::MultiThread);
        // An unset variable: one thread.
        let got = run(
            Flavor::ThreadsFromEnv("BIN_SUPPORT_TEST_UNSET_THREADS"),
            Shutdown::Background,
            async { Ok(tokio::runtime::Handle::current().runtime_flavor()) },
        )?;
        assert_eq!(got, RuntimeFlavor::CurrentThread);
        let failed: anyhow::Result<()> = run(Flavor::CurrentThread, Shutdown::Wait, async {
            anyhow::bail!("failed")
        });
        let err = failed.expect_err("the future's error");
        assert_eq!(err.to_string(), "failed");
        Ok(())
    }
}
