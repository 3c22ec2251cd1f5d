//! [`wire_enum!`]: a family of numbered wire values (commands, error codes, modes...) as a newtype over
//! `u64` with named associated constants, so that one family's value does not type-check where another's
//! is expected, while values this code has no name for still decode, compare and encode back unchanged
//! (a peer may send codes of a newer version).

/// Defines `pub struct Name(pub u64)` with one associated constant per listed value, and:
/// * `Debug` printing the constant's name, or `Unknown(n)` for a value without one;
/// * `name()`, the constant's name if any;
/// * `From<u64>` and `From<Name> for u64` (any number converts, none is lost);
/// * compact-encoding `Encode`/`Decode` as a `uint`, as the plain number was.
///
/// ```text
/// wire_enum! {
///     /// Firewall kinds.
///     pub struct Firewall {
///         /// Not known yet.
///         UNKNOWN = 0,
///         /// Reachable directly.
///         OPEN = 1,
///     }
/// }
/// ```
macro_rules! wire_enum {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident {
            $(
                $(#[$cmeta:meta])*
                $const:ident = $value:expr
            ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        $vis struct $name(pub u64);

        impl $name {
            $(
                $(#[$cmeta])*
                pub const $const: Self = Self($value);
            )+

            /// The name of this value's constant, `None` for a value without one.
            pub const fn name(self) -> Option<&'static str> {
                match self {
                    $( Self::$const => Some(stringify!($const)), )+
                    _ => None,
                }
            }
        }

        impl ::std::fmt::Debug for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                match self.name() {
                    Some(name) => f.write_str(name),
                    None => write!(f, "Unknown({})", self.0),
                }
            }
        }

        impl ::std::convert::From<u64> for $name {
            fn from(n: u64) -> Self {
                Self(n)
            }
        }

        impl ::std::convert::From<$name> for u64 {
            fn from(v: $name) -> u64 {
                v.0
            }
        }

        impl $crate::compact_encoding::Encode for $name {
            fn encode(&self, w: &mut $crate::compact_encoding::Writer) {
                w.uint(self.0);
            }
        }

        impl<'a> $crate::compact_encoding::Decode<'a> for $name {
            fn decode(
                r: &mut $crate::compact_encoding::Reader<'a>,
            ) -> $crate::compact_encoding::Result<Self> {
                r.uint().map(Self)
            }
        }
    };
}

pub(crate) use wire_enum;

#[cfg(test)]
mod tests {
    use crate::compact_encoding::{Decode, Encode};

    wire_enum! {
        /// A test family.
        struct Color {
            /// Zero.
            RED = 0,
            /// A two-byte `uint`.
            GREEN = 300,
        }
    }

    #[test]
    fn names_and_unknown_values() {
        assert_eq!(format!("{:?}", Color::RED), "RED");
        assert_eq!(format!("{:?}", Color::GREEN), "GREEN");
        assert_eq!(format!("{:?}", Color(7)), "Unknown(7)");
        assert_eq!(
            format!("{:?}", Some(Color(u64::MAX))),
            format!("Some(Unknown({}))", u64::MAX)
        );
        assert_eq!(Color::GREEN.name(), Some("GREEN"));
        assert_eq!(Color(1).name(), None);
        for n in [0, 1, 299, 300, 0xfd, 0x1_0000, u64::MAX] {
            let c = Color::from(n);
            assert_eq!(u64::from(c), n);
            let bytes = c.to_bytes();
            let mut w = crate::compact_encoding::Writer::new();
            w.uint(n);
            assert_eq!(bytes, w.into_vec(), "encoded as the plain uint");
            assert_eq!(Color::from_bytes_exact(&bytes), Ok(c));
        }
        assert!(Color::from_bytes(&[0xfd, 1]).is_err());
    }
}
