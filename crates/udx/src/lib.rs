//! UDX: reliable, congestion-controlled streams over UDP, wire-compatible with libudx / `udx-native`.
//!
//! [`packet`] holds the datagram format. [`Stream`] is one stream's whole protocol state machine, sans-IO: it
//! takes datagrams and the current time, and produces datagrams, timer deadlines and events; a driver owns the
//! UDP socket and the clock. [`Endpoint`] routes an instance's datagrams to its streams (firewall, held
//! packets, relays, datagrams for the DHT), also sans-IO. [`Udx`], [`UdxSocket`] and [`UdxStream`] are the
//! tokio driver running both.
//!
//! Public surface: the wire format ([`packet`], [`Header`]), the sans-IO state machines ([`Stream`] with
//! [`StreamConfig`], [`StreamEvent`], [`Transmit`]; [`Endpoint`] with [`Event`], [`Outgoing`], [`Routing`]) and
//! the tokio driver ([`Udx`], [`UdxSocket`], [`SocketConfig`], [`UdxStream`], [`UdxStreamControl`]). Everything
//! else (congestion control, the driver's I/O loop) is private.

#![warn(unnameable_types)]

mod endpoint;
pub mod packet;
mod socket;
mod stream;

mod io;

mod batch;
mod bbr;
mod cc;
mod ring;
mod win_filter;

pub use endpoint::{
    Endpoint, EndpointError, Event, Firewall, Outgoing, RoutedStream, Routing, SocketId,
    StreamChange, HELD_MAX, QUEUE_MAX,
};
pub use packet::{flags, Header, PacketError, HEADER_LEN, MAGIC, MTU_BASE, MTU_MAX, VERSION};
pub use socket::{
    FirewallVerdict, Readable, SocketConfig, Udx, UdxSocket, UdxStream, UdxStreamControl, WriteRoom,
};
pub use stream::{
    Stream, StreamConfig, StreamError, StreamEvent, StreamStats, Transmit, DEFAULT_RWND_MAX,
    HIGH_WATERMARK, IN_PLACE_UNSENT_MAX,
};
