//! Batched UDP I/O for the UDX driver.
//!
//! A thin layer over a tokio [`UdpSocket`] and [`quinn_udp::UdpSocketState`], which issues the batched
//! syscalls on Linux: `sendmsg` with a `UDP_SEGMENT` control message (GSO, many datagrams of one size
//! in one call), `recvmmsg` with `UDP_GRO` (many coalesced datagrams per call). Where the kernel lacks
//! GSO/GRO, quinn-udp falls back to one datagram per buffer, and this layer keeps working unchanged.

use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::task::{Context, Poll};

use quinn_udp::{RecvMeta, Transmit, UdpSockRef, UdpSocketState};
use tokio::io::Interest;
use tokio::net::UdpSocket;

/// The receive buffer asked of the kernel (SO_RCVBUF, or SO_RCVBUFFORCE when allowed).
const RECV_BUFFER_BYTES: usize = 8 << 20;
/// The send buffer asked of the kernel (SO_SNDBUF, or SO_SNDBUFFORCE when allowed).
const SEND_BUFFER_BYTES: usize = 4 << 20;
/// Largest UDP payload a single GSO send may carry (the IPv4 total length limit minus headers).
pub(crate) const MAX_GSO_BYTES: usize = 65_000;
/// The IP TTL of every send but [`UdpIo::send_to_ttl`]'s (libudx's default).
const DEFAULT_TTL: u32 = 64;
/// Largest datagram this driver expects to receive (bigger ones are truncated by the kernel and dropped).
pub(crate) const MAX_DATAGRAM: usize = 2048;

/// A UDP socket with batched send and receive.
#[derive(Debug)]
pub(crate) struct UdpIo {
    socket: UdpSocket,
    state: UdpSocketState,
    /// The socket is IPv6 (dual stack): IPv4 destinations are sent to as IPv4-mapped addresses, as libudx does.
    v6: bool,
}

impl UdpIo {
    /// Binds a socket to `addr` with large kernel buffers, GRO enabled where supported and asked for.
    ///
    /// Must be called within a tokio runtime.
    pub(crate) fn bind(addr: SocketAddr, gro: bool) -> io::Result<Self> {
        let domain = socket2::Domain::for_address(addr);
        let socket =
            socket2::Socket::new(domain, socket2::Type::DGRAM, Some(socket2::Protocol::UDP))?;
        if addr.is_ipv6() {
            // Dual stack where possible, like libuv's default for `::`.
            let _ = socket.set_only_v6(false);
        }
        socket.set_nonblocking(true)?;
        socket.bind(&addr.into())?;
        set_buffer(&socket, libc::SO_RCVBUFFORCE, RECV_BUFFER_BYTES, |s, n| {
            s.set_recv_buffer_size(n)
        });
        set_buffer(&socket, libc::SO_SNDBUFFORCE, SEND_BUFFER_BYTES, |s, n| {
            s.set_send_buffer_size(n)
        });
        let state = UdpSocketState::new(UdpSockRef::from(&socket))?;
        if !gro {
            // quinn-udp turns GRO on where it can; turn it off again.
            let _ = set_int_option(&socket, libc::SOL_UDP, libc::UDP_GRO, 0);
        }
        let socket = UdpSocket::from_std(std::net::UdpSocket::from(socket))?;
        Ok(Self {
            socket,
            state,
            v6: addr.is_ipv6(),
        })
    }

    /// The bound local address.
    pub(crate) fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// How many datagrams one GSO send may carry (1 without GSO).
    pub(crate) fn max_gso_segments(&self) -> usize {
        self.state.max_gso_segments().max(1)
    }

    /// How many datagrams the kernel may coalesce into one receive buffer (1 without GRO).
    pub(crate) fn gro_segments(&self) -> usize {
        self.state.gro_segments().max(1)
    }

    /// Receives a batch of (possibly GRO-coalesced) datagrams into `bufs`, filling `meta` with one entry per
    /// buffer used; returns how many buffers were filled.
    pub(crate) fn poll_recv(
        &self,
        cx: &mut Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        loop {
            match self.socket.poll_recv_ready(cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
            let res = self.socket.try_io(Interest::READABLE, || {
                self.state.recv(UdpSockRef::from(&self.socket), bufs, meta)
            });
            match res {
                Ok(n) => return Poll::Ready(Ok(n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                // ICMP errors (port unreachable...) surface here on Linux; they say nothing about our socket.
                Err(e) if is_transient(&e) => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    /// `addr` as this socket can send to it.
    fn destination(&self, addr: SocketAddr) -> SocketAddr {
        match addr {
            SocketAddr::V4(v4) if self.v6 => {
                SocketAddr::new(v4.ip().to_ipv6_mapped().into(), v4.port())
            }
            _ => addr,
        }
    }

    /// Sends `contents` to `destination` as datagrams of `segment_size` bytes (the last may be shorter),
    /// in one GSO send where supported. `Err(WouldBlock)` means the socket buffer is full: wait with
    /// [`UdpIo::poll_send_ready`]. Other send errors are reported as sent (UDP is lossy anyway).
    pub(crate) fn try_send(
        &self,
        destination: SocketAddr,
        contents: &[u8],
        segment_size: usize,
    ) -> io::Result<()> {
        let segment_size = if contents.len() > segment_size && segment_size > 0 {
            Some(segment_size)
        } else {
            None
        };
        let transmit = Transmit {
            destination: self.destination(destination),
            ecn: None,
            contents,
            segment_size,
            src_ip: None,
        };
        self.socket.try_io(Interest::WRITABLE, || {
            self.state.send(UdpSockRef::from(&self.socket), &transmit)
        })
    }

    /// Sends the bytes of `iov`, concatenated (`len` in all), to `destination` as datagrams of `segment_size`
    /// bytes (the last may be shorter): one `sendmsg` with a `UDP_SEGMENT` control message (GSO) when there is
    /// more than one, its iovecs pointing at the caller's buffers (no copy into a contiguous one). Errors as
    /// the system call reports them: `WouldBlock` when the socket buffer is full; the caller decides what else
    /// is fatal (UDP is lossy). See [`is_gso_error`].
    #[cfg(target_os = "linux")]
    pub(crate) fn try_send_iov(
        &self,
        destination: SocketAddr,
        iov: &[io::IoSlice<'_>],
        len: usize,
        segment_size: usize,
    ) -> io::Result<()> {
        let dest = socket2::SockAddr::from(self.destination(destination));
        // SAFETY: an all-zero msghdr is valid (null pointers, zero lengths).
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_name = dest.as_ptr() as *mut libc::c_void;
        msg.msg_namelen = dest.len();
        // `IoSlice` is guaranteed ABI-compatible with `iovec` on Unix; sendmsg does not write through it.
        msg.msg_iov = iov.as_ptr() as *mut libc::iovec;
        msg.msg_iovlen = iov.len() as _;
        // Room for one control message carrying a u16, 8-byte aligned.
        let mut control = [0u64; 4];
        if segment_size > 0 && len > segment_size {
            let segment = u16::try_from(segment_size)
                .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
            // SAFETY: CMSG_SPACE/CMSG_LEN are pure size computations; `control` (32 bytes) holds
            // CMSG_SPACE(2) (24 bytes on 64-bit, 16 on 32-bit), so CMSG_FIRSTHDR returns a header inside it
            // and CMSG_DATA points at 2 writable bytes within it (written unaligned).
            unsafe {
                let space = libc::CMSG_SPACE(std::mem::size_of::<u16>() as u32) as usize;
                debug_assert!(space <= std::mem::size_of_val(&control));
                msg.msg_control = control.as_mut_ptr().cast();
                msg.msg_controllen = space as _;
                let cmsg = libc::CMSG_FIRSTHDR(&msg);
                if cmsg.is_null() {
                    return Err(io::Error::from(io::ErrorKind::InvalidInput));
                }
                (*cmsg).cmsg_level = libc::SOL_UDP;
                (*cmsg).cmsg_type = libc::UDP_SEGMENT;
                (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<u16>() as u32) as _;
                std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<u16>(), segment);
            }
        }
        let fd = self.socket.as_raw_fd();
        self.socket.try_io(Interest::WRITABLE, || loop {
            // SAFETY: `msg` points at `dest`, `iov` and `control`, all alive and unchanged during the call;
            // sendmsg only reads them.
            let n = unsafe { libc::sendmsg(fd, &msg, 0) };
            if n >= 0 {
                return Ok(());
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        })
    }

    /// [`UdpIo::try_send_iov`] where `sendmsg` has no GSO: the bytes are gathered into one buffer and sent as
    /// [`UdpIo::try_send`] does.
    #[cfg(not(target_os = "linux"))]
    pub(crate) fn try_send_iov(
        &self,
        destination: SocketAddr,
        iov: &[io::IoSlice<'_>],
        len: usize,
        segment_size: usize,
    ) -> io::Result<()> {
        let mut contents = Vec::with_capacity(len);
        for slice in iov {
            contents.extend_from_slice(slice);
        }
        self.try_send(destination, &contents, segment_size)
    }

    /// Sends `contents` one datagram at a time without GSO (raw, non-UDX datagrams).
    pub(crate) async fn send_to(
        &self,
        contents: &[u8],
        destination: SocketAddr,
    ) -> io::Result<usize> {
        self.socket
            .send_to(contents, self.destination(destination))
            .await
    }

    /// Sends one datagram with the IP TTL set to `ttl` for it (udx-native's `send(..., ttl)`): the socket's
    /// TTL is changed for the send and set back to the default (64) afterwards.
    pub(crate) async fn send_to_ttl(
        &self,
        contents: &[u8],
        destination: SocketAddr,
        ttl: u32,
    ) -> io::Result<usize> {
        let sock = socket2::SockRef::from(&self.socket);
        sock.set_ttl(ttl)?;
        let res = self
            .socket
            .send_to(contents, self.destination(destination))
            .await;
        sock.set_ttl(DEFAULT_TTL)?;
        res
    }

    /// Readiness for [`UdpIo::try_send`].
    pub(crate) fn poll_send_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.socket.poll_send_ready(cx)
    }
}

/// The MTU the OS reports for the path to `addr` (libudx `udx__get_link_mtu`: connect a throwaway UDP socket and
/// ask `IP_MTU` / `IPV6_MTU`), or `None` when it cannot tell.
pub(crate) fn link_mtu(addr: SocketAddr) -> Option<usize> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::DGRAM,
        None,
    )
    .ok()?;
    socket.connect(&addr.into()).ok()?;
    let (level, name) = if addr.is_ipv4() {
        (libc::IPPROTO_IP, libc::IP_MTU)
    } else {
        (libc::IPPROTO_IPV6, libc::IPV6_MTU)
    };
    let mut mtu: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt with a valid fd, a pointer to a live c_int and its size in `len`.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            level,
            name,
            (&mut mtu as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if rc == 0 {
        usize::try_from(mtu).ok().filter(|&m| m > 0)
    } else {
        None
    }
}

fn set_int_option(
    socket: &socket2::Socket,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: setsockopt with a valid fd, a pointer to a live c_int and its exact size.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            name,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// A send error that means the path cannot segment (some drivers refuse UDP GSO with `EIO` or `EINVAL`): the
/// caller stops batching, as quinn-udp does.
pub(crate) fn is_gso_error(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EIO) | Some(libc::EINVAL))
}

fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ECONNREFUSED)
            | Some(libc::ECONNRESET)
            | Some(libc::EHOSTUNREACH)
            | Some(libc::ENETUNREACH)
    )
}

/// Sets a socket buffer size: first the `*FORCE` variant (root may exceed `net.core.*mem_max`), then the
/// ordinary option, which the kernel caps silently.
fn set_buffer(
    socket: &socket2::Socket,
    force_opt: libc::c_int,
    bytes: usize,
    fallback: impl Fn(&socket2::Socket, usize) -> io::Result<()>,
) {
    let value = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    if set_int_option(socket, libc::SOL_SOCKET, force_opt, value).is_err() {
        if let Err(e) = fallback(socket, bytes) {
            tracing::debug!("udx: could not set socket buffer to {bytes}: {e}");
        }
    }
}

/// Buffers per receive call (`recvmmsg` batch).
/// At most 8 (quinn-udp offers 32): with GRO that is up to 512 KiB a call, whose datagrams are still in the
/// CPU's cache when the streams take them, and readers run between batches.
const BATCH: usize = if quinn_udp::BATCH_SIZE > 8 {
    8
} else if quinn_udp::BATCH_SIZE > 0 {
    quinn_udp::BATCH_SIZE
} else {
    1
};

/// Receive-side buffers reused across calls: `BATCH_SIZE` buffers, each big enough for a full GRO batch.
#[derive(Debug)]
pub(crate) struct RecvBuffers {
    storage: Vec<u8>,
    buf_len: usize,
    pub(crate) meta: Vec<RecvMeta>,
}

impl RecvBuffers {
    /// Buffers sized for `io`'s GRO capability.
    pub(crate) fn new(io: &UdpIo) -> Self {
        let batch = BATCH;
        let buf_len = (io.gro_segments() * MAX_DATAGRAM).clamp(MAX_DATAGRAM, 64 * 1024);
        Self {
            storage: vec![0; batch * buf_len],
            buf_len,
            meta: vec![RecvMeta::default(); batch],
        }
    }

    /// Receives one batch; on success returns how many entries of `meta` are valid, whose data
    /// [`RecvBuffers::datagrams`] then yields.
    pub(crate) fn poll_recv(
        &mut self,
        io: &UdpIo,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<usize>> {
        let mut chunks = self.storage.chunks_mut(self.buf_len);
        let mut slices: [IoSliceMut<'_>; BATCH] =
            std::array::from_fn(|_| IoSliceMut::new(chunks.next().unwrap_or_default()));
        io.poll_recv(cx, &mut slices, &mut self.meta)
    }

    /// The datagrams of received buffer `i` (GRO-coalesced buffers are split by their stride), with the
    /// source address.
    pub(crate) fn datagrams(&self, i: usize) -> (SocketAddr, impl Iterator<Item = &[u8]>) {
        let meta = self.meta.get(i).copied().unwrap_or_default();
        let start = i * self.buf_len;
        let data = self
            .storage
            .get(start..start + meta.len.min(self.buf_len))
            .unwrap_or(&[]);
        let stride = if meta.stride == 0 {
            data.len().max(1)
        } else {
            meta.stride
        };
        (meta.addr, data.chunks(stride))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_mtu_reports_the_loopback_mtu() {
        let mtu = link_mtu("127.0.0.1:9".parse().expect("addr")).expect("loopback has an MTU");
        // The kernel caps IPv4's answer at 65535 while `lo` may say 65536.
        let lo = std::fs::read_to_string("/sys/class/net/lo/mtu")
            .ok()
            .and_then(|s| s.trim().parse::<usize>().ok())
            .unwrap_or(usize::MAX);
        assert!(
            (1280..=lo).contains(&mtu),
            "loopback MTU {mtu}, lo says {lo}"
        );
    }
}
