//! The storage work [`super::ReplicatorCore`] hands to its driver instead of doing it itself: verifying and
//! storing a proof a peer sent (`pwrite`, and `fdatasync` on a [`crate::hypercore::Durability::Sync`] core),
//! and reading what answers a peer's request. The core stays sans-IO; the driver performs effects off the
//! async runtime, in order, and reports each back with [`super::ReplicatorCore::complete`].

use super::super::messages::{Data, Request, NO_DATA_INVALID_REQUEST, NO_DATA_NOT_AVAILABLE};
use super::super::{Hypercore, HypercoreError};
use super::PeerId;

/// Storage work for the driver ([`super::ReplicatorCore::poll_effect`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Verify `data` (a peer's answer to our request `request`) and store what it proves.
    Store {
        /// Who sent it.
        peer: PeerId,
        /// The request it answers.
        request: u64,
        /// The proof.
        data: Box<Data>,
    },
    /// Read the proof (and block) that answers `request` of `peer`.
    Serve {
        /// Who asked.
        peer: PeerId,
        /// The request.
        request: Request,
    },
}

/// The result of an [`Effect`], for [`super::ReplicatorCore::complete`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Completion {
    /// An [`Effect::Store`] ended.
    Stored {
        /// Who sent the proof.
        peer: PeerId,
        /// The request it answered.
        request: u64,
        /// The block it carried.
        block: Option<u64>,
        /// The core's length before and after, or why the proof was refused (nothing was stored then).
        result: Result<(u64, u64), String>,
    },
    /// An [`Effect::Serve`] ended.
    Served {
        /// Who asked.
        peer: PeerId,
        /// The request id.
        request: u64,
        /// The `data` answer, or the `noData` reason.
        answer: Result<Box<Data>, u64>,
    },
}

impl Effect {
    /// The peer the effect is for.
    pub fn peer(&self) -> PeerId {
        match self {
            Self::Store { peer, .. } | Self::Serve { peer, .. } => *peer,
        }
    }

    /// Does the work against `core`. Blocking (file I/O, and an `fdatasync` per stored proof on a
    /// synced core): call it from a blocking thread, not from an async task.
    pub fn perform(self, core: &Hypercore) -> Completion {
        match self {
            Self::Store {
                peer,
                request,
                data,
            } => {
                let before = core.replicated_head().0;
                let mut block = data.block.as_ref().map(|b| b.index);
                let result = match core.apply_proof(&data) {
                    Ok(()) => Ok((before, core.replicated_head().0)),
                    // nothing stored; the block (if any) is asked for again without the upgrade
                    Err(HypercoreError::UpgradeRefused) => {
                        block = None;
                        Ok((before, before))
                    }
                    Err(e) => Err(e.to_string()),
                };
                Completion::Stored {
                    peer,
                    request,
                    block,
                    result,
                }
            }
            Self::Serve { peer, request } => {
                let available = request.fork == core.replicated_head().1
                    && request.block.is_none_or(|b| core.has(b.index));
                let answer = if available {
                    core.serve_proof(&request).map(Box::new).map_err(|_| {
                        // Cleared or truncated away since the request came in: not an invalid request.
                        if request.block.is_some_and(|b| !core.has(b.index)) {
                            NO_DATA_NOT_AVAILABLE
                        } else {
                            NO_DATA_INVALID_REQUEST
                        }
                    })
                } else {
                    Err(NO_DATA_NOT_AVAILABLE)
                };
                Completion::Served {
                    peer,
                    request: request.id,
                    answer,
                }
            }
        }
    }
}
