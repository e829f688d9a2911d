//! A minimal DER writer (ITU-T X.690) for the few structures the internal CA
//! encodes by hand: the CRL (`TBSCertList`, RFC 5280 section 5) and the
//! certificate's CRL distribution point extension.
//!
//! The `openssl` crate's CRL builder cannot attach a reasonCode extension to
//! a revoked entry, so the CRL is encoded here and only signed by OpenSSL.
//! Every function returns one complete TLV; constructed values are built by
//! concatenating their children's encodings.

use chrono::{DateTime, Datelike, Utc};

/// Universal and context-specific tags used by the CA's structures.
pub(crate) mod tag {
    /// INTEGER.
    pub const INTEGER: u8 = 0x02;
    /// BIT STRING.
    pub const BIT_STRING: u8 = 0x03;
    /// OCTET STRING.
    pub const OCTET_STRING: u8 = 0x04;
    /// NULL.
    pub const NULL: u8 = 0x05;
    /// OBJECT IDENTIFIER.
    pub const OID: u8 = 0x06;
    /// ENUMERATED.
    pub const ENUMERATED: u8 = 0x0a;
    /// UTCTime.
    pub const UTC_TIME: u8 = 0x17;
    /// GeneralizedTime.
    pub const GENERALIZED_TIME: u8 = 0x18;
    /// SEQUENCE (constructed).
    pub const SEQUENCE: u8 = 0x30;
}

/// One TLV: `tag`, the definite length of `content`, then `content`.
pub(crate) fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 6);
    out.push(tag);
    let len = content.len();
    if len < 0x80 {
        // Short form: the length fits the low seven bits.
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
    out
}

/// A SEQUENCE of already-encoded `items`.
pub(crate) fn sequence(items: &[&[u8]]) -> Vec<u8> {
    tlv(tag::SEQUENCE, &items.concat())
}

/// A context-specific constructed tag `[n]` around `content` (explicit
/// tagging, or implicit tagging of a constructed type).
pub(crate) fn context_constructed(n: u8, content: &[u8]) -> Vec<u8> {
    tlv(0xa0 | n, content)
}

/// A context-specific primitive tag `[n]` around `content` (implicit tagging
/// of a primitive type such as IA5String).
pub(crate) fn context_primitive(n: u8, content: &[u8]) -> Vec<u8> {
    tlv(0x80 | n, content)
}

/// A non-negative INTEGER from its big-endian magnitude (e.g. a serial
/// number), minimally encoded.
pub(crate) fn unsigned_integer(magnitude: &[u8]) -> Vec<u8> {
    let start = magnitude
        .iter()
        .position(|b| *b != 0)
        .unwrap_or(magnitude.len());
    let trimmed = &magnitude[start..];
    let mut content = Vec::with_capacity(trimmed.len() + 1);
    // A leading 1 bit would make the value negative: pad it with a zero byte.
    if trimmed.first().is_none_or(|b| b & 0x80 != 0) {
        content.push(0);
    }
    content.extend_from_slice(trimmed);
    tlv(tag::INTEGER, &content)
}

/// A non-negative INTEGER from a `u64`.
pub(crate) fn integer(value: u64) -> Vec<u8> {
    unsigned_integer(&value.to_be_bytes())
}

/// An ENUMERATED with a small non-negative value.
pub(crate) fn enumerated(value: u8) -> Vec<u8> {
    if value & 0x80 != 0 {
        tlv(tag::ENUMERATED, &[0, value])
    } else {
        tlv(tag::ENUMERATED, &[value])
    }
}

/// An OBJECT IDENTIFIER from its arcs (`&[2, 5, 29, 20]`).
///
/// The arcs are compile-time constants of this crate, so a malformed one is
/// a programming error; it still encodes deterministically rather than
/// panicking.
pub(crate) fn oid(arcs: &[u64]) -> Vec<u8> {
    let mut content = Vec::new();
    let (first, second) = match arcs {
        [a, b, ..] => (*a, *b),
        [a] => (*a, 0),
        [] => (0, 0),
    };
    push_base128(&mut content, first * 40 + second);
    for arc in arcs.iter().skip(2) {
        push_base128(&mut content, *arc);
    }
    tlv(tag::OID, &content)
}

fn push_base128(out: &mut Vec<u8>, value: u64) {
    let mut groups = vec![(value & 0x7f) as u8];
    let mut rest = value >> 7;
    while rest > 0 {
        groups.push(0x80 | (rest & 0x7f) as u8);
        rest >>= 7;
    }
    out.extend(groups.iter().rev());
}

/// An OCTET STRING.
pub(crate) fn octet_string(content: &[u8]) -> Vec<u8> {
    tlv(tag::OCTET_STRING, content)
}

/// A BIT STRING holding whole bytes (no unused bits), as signatures are.
pub(crate) fn bit_string(content: &[u8]) -> Vec<u8> {
    let mut inner = Vec::with_capacity(content.len() + 1);
    inner.push(0);
    inner.extend_from_slice(content);
    tlv(tag::BIT_STRING, &inner)
}

/// A NULL.
pub(crate) fn null() -> Vec<u8> {
    tlv(tag::NULL, &[])
}

/// An RFC 5280 `Time`: UTCTime for the years 1950 to 2049, GeneralizedTime
/// otherwise (section 4.1.2.5), always in UTC with whole seconds.
pub(crate) fn time(at: DateTime<Utc>) -> Vec<u8> {
    if (1950..2050).contains(&at.year()) {
        tlv(
            tag::UTC_TIME,
            at.format("%y%m%d%H%M%SZ").to_string().as_bytes(),
        )
    } else {
        tlv(
            tag::GENERALIZED_TIME,
            at.format("%Y%m%d%H%M%SZ").to_string().as_bytes(),
        )
    }
}

/// An `Extension` (RFC 5280 section 4.1): its OID, the critical flag when
/// set (DER omits the default FALSE), and the DER value wrapped in an OCTET
/// STRING.
pub(crate) fn extension(oid_arcs: &[u64], critical: bool, value: &[u8]) -> Vec<u8> {
    let id = oid(oid_arcs);
    let wrapped = octet_string(value);
    if critical {
        sequence(&[&id, &tlv(0x01, &[0xff]), &wrapped])
    } else {
        sequence(&[&id, &wrapped])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn lengths_switch_to_long_form_at_128() {
        assert_eq!(tlv(0x04, &[0; 127])[..2], [0x04, 127]);
        assert_eq!(tlv(0x04, &[0; 128])[..3], [0x04, 0x81, 128]);
        assert_eq!(tlv(0x04, &[0; 300])[..4], [0x04, 0x82, 0x01, 0x2c]);
    }

    #[test]
    fn integers_are_minimal_and_non_negative() {
        assert_eq!(integer(0), [0x02, 0x01, 0x00]);
        assert_eq!(integer(127), [0x02, 0x01, 0x7f]);
        assert_eq!(integer(128), [0x02, 0x02, 0x00, 0x80]);
        assert_eq!(unsigned_integer(&[0, 0, 1, 2]), [0x02, 0x02, 0x01, 0x02]);
    }

    #[test]
    fn oids_encode_like_openssl() {
        // id-ce-cRLNumber and sha256WithRSAEncryption, as `openssl asn1parse` shows them.
        assert_eq!(oid(&[2, 5, 29, 20]), [0x06, 0x03, 0x55, 0x1d, 0x14]);
        assert_eq!(
            oid(&[1, 2, 840, 113549, 1, 1, 11]),
            [
                0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b
            ]
        );
    }

    #[test]
    fn times_pick_utc_or_generalized_by_year() {
        let t = Utc.with_ymd_and_hms(2030, 1, 2, 3, 4, 5).single().unwrap();
        assert_eq!(time(t), tlv(tag::UTC_TIME, b"300102030405Z"));
        let t = Utc.with_ymd_and_hms(2050, 1, 2, 3, 4, 5).single().unwrap();
        assert_eq!(time(t), tlv(tag::GENERALIZED_TIME, b"20500102030405Z"));
    }
}
