//! Exit codes, the same in every tool:
//!
//! - 0: done (for the long-running tools: stopped by SIGINT/SIGTERM, as their JS twins);
//! - 1: a runtime error, reported as one line on stderr: the tool's prefix then the error and its causes
//!   (`hyperdht: binding 127.0.0.1:49737: ...`, `Error: ...`, `[hyperbeam] Error: ...`, see [`Report`]);
//! - 2: a usage error, with clap's message (clap's own errors, and the tools' checks reported as
//!   `clap::Error`);
//! - 128 + n: ended by signal n where the tool's behaviour calls for it ([`Killed`]);
//! - a child's status for the tools that run one (hyperssh: ssh's; [`child_status`]).

use std::process::ExitCode;

use crate::signals::Signal;

/// Exit status of a runtime error.
pub const FAILURE: u8 = 1;
/// Exit status of a usage error (clap's).
pub const USAGE: u8 = 2;

/// An error that ends the tool as if the signal had killed it: exit status 128 + the signal number, nothing printed.
/// (hyperbeam: a second Ctrl-C while the pipe is ending; the JS bin handles only the first.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Killed(pub Signal);

impl std::fmt::Display for Killed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "killed by signal {}", self.0.number())
    }
}

impl std::error::Error for Killed {}

/// The exit status for `error`: 128 + n for a [`Killed`], clap's code for a `clap::Error` (2 for usage
/// errors), else 1.
pub fn status(error: &anyhow::Error) -> u8 {
    if let Some(Killed(signal)) = error.downcast_ref::<Killed>() {
        return signal.exit_status();
    }
    if let Some(e) = error.downcast_ref::<clap::Error>() {
        return u8::try_from(e.exit_code()).unwrap_or(USAGE);
    }
    FAILURE
}

/// How a tool reports a runtime error: one line on stderr, `<prefix><error: its causes>`.
///
/// The prefixes the tools print (kept from before they shared this code; tests compare them): `hyperdht: `,
/// `hypershell: `, `hypershell-server: `, `hypershell-copy: ` (the tool's name); `Error: ` (hypertele,
/// hypertele-server, hyperssh, hyperssh-fuse, drives, hypershell-keygen); `[hyperbeam] Error: `.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    prefix: &'static str,
}

impl Report {
    /// Errors as `<prefix><message>`; `prefix` includes its separator (`"Error: "`).
    pub const fn new(prefix: &'static str) -> Self {
        Self { prefix }
    }

    /// The line printed for `error` (without the newline): the prefix, then the error with its causes
    /// (`{:#}`, `outer: inner: ...`).
    pub fn line(&self, error: &anyhow::Error) -> String {
        format!("{}{error:#}", self.prefix)
    }

    /// Reports `error` and returns its exit code ([`status`]): a [`Killed`] prints nothing, a `clap::Error`
    /// prints clap's message (help and version on stdout, errors on stderr), anything else prints
    /// [`line`](Self::line) on stderr.
    pub fn fail(&self, error: &anyhow::Error) -> ExitCode {
        if error.downcast_ref::<Killed>().is_none() {
            match error.downcast_ref::<clap::Error>() {
                Some(e) => {
                    let _ = e.print();
                }
                None => eprintln!("{}", self.line(error)),
            }
        }
        ExitCode::from(status(error))
    }

    /// The exit code of a tool's run: `Ok(status)` as it is (`()` is 0), an error through
    /// [`fail`](Self::fail).
    pub fn exit<T: Into<Status>>(&self, result: anyhow::Result<T>) -> ExitCode {
        match result {
            Ok(status) => ExitCode::from(status.into().0),
            Err(e) => self.fail(&e),
        }
    }
}

/// A successful run's exit status: `()` is 0, a `u8` is itself (hyperssh passes ssh's status on).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status(pub u8);

impl From<()> for Status {
    fn from((): ()) -> Self {
        Status(0)
    }
}

impl From<u8> for Status {
    fn from(status: u8) -> Self {
        Status(status)
    }
}

/// The exit status to pass on for a child process's: its code, or 128 + the signal that killed it (what a
/// shell reports), 1 when neither fits in a byte.
pub fn child_status(status: std::process::ExitStatus) -> u8 {
    if let Some(code) = status.code() {
        return u8::try_from(code).unwrap_or(FAILURE);
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = status.signal() {
            return u8::try_from(128 + signal).unwrap_or(FAILURE);
        }
    }
    FAILURE
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn runtime_errors_are_one_line_and_exit_1() {
        let e = Err::<(), _>(std::io::Error::other("Address already in use"))
            .context("binding 127.0.0.1:5")
            .expect_err("error");
        assert_eq!(status(&e), 1);
        assert_eq!(
            Report::new("hyperdht: ").line(&e),
            "hyperdht: binding 127.0.0.1:5: Address already in use"
        );
        assert_eq!(
            Report::new("[hyperbeam] Error: ").line(&anyhow::anyhow!("x")),
            "[hyperbeam] Error: x"
        );
        assert_eq!(Report::new("Error: ").fail(&e), ExitCode::FAILURE);
    }

    #[test]
    fn success_and_passed_on_statuses() {
        let report = Report::new("Error: ");
        assert_eq!(report.exit(Ok(())), ExitCode::SUCCESS);
        assert_eq!(report.exit(Ok(255u8)), ExitCode::from(255));
        assert_eq!(
            report.exit::<()>(Err(anyhow::anyhow!("no"))),
            ExitCode::FAILURE
        );
    }

    #[test]
    fn signals_exit_128_plus_n() {
        for (signal, code) in [
            (Signal::Interrupt, 130),
            (Signal::Terminate, 143),
            (Signal::Hangup, 129),
        ] {
            let e = anyhow::Error::new(Killed(signal));
            assert_eq!(status(&e), code);
            // Also through context added on the way up.
            assert_eq!(status(&e.context("piping")), code);
        }
        let report = Report::new("Error: ");
        assert_eq!(
            report.exit::<()>(Err(Killed(Signal::Interrupt).into())),
            ExitCode::from(130)
        );
        assert_eq!(Killed(Signal::Terminate).to_string(), "killed by signal 15");
    }

    #[test]
    fn usage_errors_exit_2() {
        let e = clap::Command::new("tool")
            .try_get_matches_from(["tool", "--bogus"])
            .expect_err("unknown flag");
        assert_eq!(status(&anyhow::Error::new(e)), USAGE);
    }

    #[cfg(unix)]
    #[test]
    fn child_statuses() {
        use std::os::unix::process::ExitStatusExt;
        // Wait statuses: the code in the second byte, a signal in the low bits.
        assert_eq!(child_status(std::process::ExitStatus::from_raw(0)), 0);
        assert_eq!(
            child_status(std::process::ExitStatus::from_raw(255 << 8)),
            255
        );
        assert_eq!(
            child_status(std::process::ExitStatus::from_raw(libc::SIGTERM)),
            143
        );
        assert_eq!(
            child_status(std::process::ExitStatus::from_raw(libc::SIGKILL)),
            137
        );
    }
}
