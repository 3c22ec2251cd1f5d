//! The UDX stream lends its send and receive rings to the secret stream of a connection
//! ([`SecretStream::set_in_place`](crate::secret_stream::SecretStream::set_in_place)): frames are encrypted
//! straight into the ring the packets are sent from, and decrypted straight out of the ring datagrams are
//! received into.

use std::io;
use std::task::{Context, Poll};

use crate::secret_stream::{InPlaceOps, Received, SendRoom};
use crate::udx::{UdxStream, WriteRoom};

/// [`InPlaceOps`] of a [`UdxStream`].
pub(crate) const UDX_IN_PLACE: InPlaceOps<UdxStream> = InPlaceOps {
    poll_write,
    poll_read,
};

/// A UDX stream's send room as the secret stream sees it.
struct Room<'a, 'b>(&'a mut WriteRoom<'b>);

impl SendRoom for Room<'_, '_> {
    fn capacity(&self) -> usize {
        self.0.capacity()
    }

    fn reserve(&mut self, n: usize) -> Option<(&mut [u8], &mut [u8])> {
        self.0.reserve(n)
    }
}

fn poll_write(
    io: &mut UdxStream,
    cx: &mut Context<'_>,
    min: usize,
    fill: &mut dyn FnMut(&mut dyn SendRoom),
) -> Poll<io::Result<()>> {
    io.poll_write_with(cx, min, |room| fill(&mut Room(room)))
}

fn poll_read(
    io: &mut UdxStream,
    cx: &mut Context<'_>,
    take: &mut dyn FnMut(Received<'_>) -> Option<usize>,
) -> Poll<io::Result<()>> {
    io.poll_read_with(cx, |r| {
        take(Received {
            first: r.first,
            second: r.second,
            ended: r.ended,
            window: r.window,
        })
        .map(|n| (n, ()))
    })
}
