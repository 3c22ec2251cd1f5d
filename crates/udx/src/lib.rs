//! UDX: reliable, congestion-controlled streams over UDP, wire-compatible with libudx / `udx-native`.
//!
//! [`packet`] holds the datagram format. [`Stream`] is one stream's whole protocol state machine, sans-IO: it
//! takes datagrams and the current time, and produces datagrams, timer deadlines and events; a driver owns the
//! UDP socket and the clock. [`Endpoint`] routes an instance's datagrams to its streams (firewall, held
//! packets, relays, datagrams for the DHT), also sans-IO; [`socket`] is the tokio driver running both.

pub mod endpoint;
pub mod packet;
pub mod socket;
pub mod stream;

mod io;

mod bbr;
mod cc;
mod ring;
mod win_filter;

pub use endpoint::{Endpoint, EndpointError, Event, Outgoing, RoutedStream, Routing, StreamChange};
pub use packet::{flags, Header, PacketError, HEADER_LEN, MAGIC, MTU_BASE, MTU_MAX, VERSION};
pub use socket::{FirewallVerdict, SocketConfig, Udx, UdxSocket, UdxStream, UdxStreamControl};
pub use stream::{Stream, StreamConfig, StreamError, StreamEvent, StreamStats, Transmit};
