//! The numbered wire families of dht-rpc and hyperdht (commands, error codes, firewall kinds, modes) as
//! newtypes: names print, values without a name print as `Unknown(n)`, and every value, named or not, goes
//! through the messages byte for byte.

use holepunch_dht::dht_rpc::messages::{
    ErrorCode as RpcErrorCode, InternalCommand, Message, Response, UNSPECIFIED,
};
use holepunch_dht::hyperdht::constants::{Command, ErrorCode, Firewall, Mode};
use holepunch_dht::hyperdht::messages::{Handshake, Holepunch, HolepunchPayload, NoisePayload};
use holepunch_wire::compact_encoding::{Decode, Encode, Writer};
use proptest::prelude::*;

fn uint(n: u64) -> Vec<u8> {
    let mut w = Writer::new();
    w.uint(n);
    w.into_vec()
}

#[test]
fn names_print() {
    assert_eq!(format!("{:?}", Command::PEER_HANDSHAKE), "PEER_HANDSHAKE");
    assert_eq!(format!("{:?}", Command::PLUGIN), "PLUGIN");
    assert_eq!(format!("{:?}", Firewall::RANDOM), "RANDOM");
    assert_eq!(format!("{:?}", ErrorCode::SEQ_TOO_LOW), "SEQ_TOO_LOW");
    assert_eq!(
        format!("{:?}", Mode::FROM_SECOND_RELAY),
        "FROM_SECOND_RELAY"
    );
    assert_eq!(
        format!("{:?}", RpcErrorCode::INVALID_TOKEN),
        "INVALID_TOKEN"
    );
    assert_eq!(
        format!("{:?}", InternalCommand::DELAYED_PING),
        "DELAYED_PING"
    );
    // The same number is a different name in each family.
    assert_eq!(format!("{:?}", Firewall(1)), "OPEN");
    assert_eq!(format!("{:?}", ErrorCode(1)), "ABORTED");
    assert_eq!(format!("{:?}", RpcErrorCode(1)), "UNKNOWN_COMMAND");
    assert_eq!(Mode::REPLY.name(), Some("REPLY"));
}

#[test]
fn unknown_values_print_and_convert() {
    assert_eq!(format!("{:?}", Firewall(4)), "Unknown(4)");
    assert_eq!(format!("{:?}", ErrorCode(4)), "Unknown(4)");
    assert_eq!(format!("{:?}", Command(11)), "Unknown(11)");
    assert_eq!(
        format!("{:?}", Mode(u64::MAX)),
        format!("Unknown({})", u64::MAX)
    );
    assert_eq!(format!("{:?}", RpcErrorCode(16)), "Unknown(16)");
    assert_eq!(Firewall(4).name(), None);
    for n in [0, 3, 4, 17, 0xfc, 0xfd, 0x1_0000, u64::MAX] {
        assert_eq!(u64::from(Firewall::from(n)), n);
        assert_eq!(u64::from(Command::from(n)), n);
        assert_eq!(u64::from(ErrorCode::from(n)), n);
        assert_eq!(u64::from(Mode::from(n)), n);
        assert_eq!(u64::from(RpcErrorCode::from(n)), n);
        assert_eq!(Firewall(n).to_bytes(), uint(n), "a plain uint on the wire");
        assert_eq!(Firewall::from_bytes_exact(&uint(n)), Ok(Firewall(n)));
        assert_eq!(ErrorCode::from_bytes_exact(&uint(n)), Ok(ErrorCode(n)));
    }
    // hyperdht's error codes travel in dht-rpc's reply field unchanged.
    assert_eq!(RpcErrorCode::from(ErrorCode::SEQ_REUSED), RpcErrorCode(16));
    assert_eq!(ErrorCode::from(RpcErrorCode(17)), ErrorCode::SEQ_TOO_LOW);
    // Kinds above RANDOM order as the numbers do (the holepuncher compares with >=).
    assert!(Firewall(7) > Firewall::RANDOM);
}

#[test]
fn unknown_values_round_trip_through_messages() {
    let hs = Handshake {
        mode: Mode(9),
        noise: vec![1, 2, 3],
        peer_address: None,
        relay_address: None,
    };
    let back = Handshake::from_bytes_exact(&hs.to_bytes()).expect("decodes");
    assert_eq!(back, hs);
    assert!(format!("{back:?}").contains("mode: Unknown(9)"), "{back:?}");

    let payload = NoisePayload {
        error: ErrorCode(99),
        firewall: Firewall(300),
        ..NoisePayload::default()
    };
    let bytes = payload.to_bytes();
    let back = NoisePayload::from_bytes_exact(&bytes).expect("decodes");
    assert_eq!((back.error, back.firewall), (ErrorCode(99), Firewall(300)));
    assert_eq!(back.to_bytes(), bytes);
    let printed = format!("{back:?}");
    assert!(printed.contains("error: Unknown(99)"), "{printed}");
    assert!(printed.contains("firewall: Unknown(300)"), "{printed}");

    let response = Message::Response(Response {
        tid: 7,
        to: UNSPECIFIED,
        id: None,
        token: None,
        closer_nodes: None,
        error: RpcErrorCode(1000),
        value: None,
    });
    let bytes = response.to_bytes();
    assert_eq!(Message::decode(&bytes).expect("decodes"), response);
}

proptest! {
    #[test]
    fn any_value_round_trips(mode in any::<u64>(), error in any::<u64>(), firewall in any::<u64>(),
                             id in any::<u64>()) {
        let hp = Holepunch { mode: Mode(mode), id, payload: vec![0; 4], peer_address: None };
        prop_assert_eq!(Holepunch::from_bytes_exact(&hp.to_bytes()).expect("decodes"), hp);
        let p = HolepunchPayload {
            error: ErrorCode(error),
            firewall: Firewall(firewall),
            ..HolepunchPayload::default()
        };
        let bytes = p.to_bytes();
        let back = HolepunchPayload::from_bytes_exact(&bytes).expect("decodes");
        prop_assert_eq!(back.to_bytes(), bytes);
        prop_assert_eq!(back, p);
    }
}
