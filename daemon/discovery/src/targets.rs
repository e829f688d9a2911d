//! Scan targets as users write them: addresses, CIDRs (IPv4 and IPv6),
//! ranges, host names, files of targets, and curl-style `--resolve`.
//!
//! Parsing is strict and errors say what was expected, because a typo in a
//! target list should stop a scan before it starts, not silently scan
//! nothing. Expansion into endpoints is lazy (a /16 is 65,536 addresses) and
//! capped, so an IPv6 /64 is refused instead of exhausting memory.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;

use ipnet::IpNet;

/// The most addresses one target may expand to.
pub const MAX_ADDRESSES_PER_TARGET: u128 = 1 << 24;

/// One thing to scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// One address.
    Address(IpAddr),
    /// A network in CIDR notation; every address in it, network and
    /// broadcast addresses included (hosts may sit on them in /31 and /32s).
    Network(IpNet),
    /// An inclusive range of addresses of one family.
    Range(IpAddr, IpAddr),
    /// A DNS name: its addresses are scanned with the name as SNI.
    Name(String),
}

/// A target that could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("target `{input}`: {reason}")]
pub struct TargetError {
    /// What the user wrote.
    pub input: String,
    /// What was wrong and what was expected.
    pub reason: String,
}

fn bad(input: &str, reason: impl Into<String>) -> TargetError {
    TargetError {
        input: input.to_string(),
        reason: reason.into(),
    }
}

impl Target {
    /// Parses `192.0.2.7`, `2001:db8::1`, `10.0.0.0/24`, `10.0.0.1-10.0.0.50`,
    /// `10.0.0.1-50`, or a host name.
    pub fn parse(input: &str) -> Result<Target, TargetError> {
        let text = input.trim();
        if text.is_empty() {
            return Err(bad(input, "empty"));
        }
        if text.contains('/') {
            let net: IpNet = text.parse().map_err(|_| {
                bad(
                    input,
                    "not a CIDR network; expected e.g. 10.0.0.0/24 or 2001:db8::/120",
                )
            })?;
            let target = Target::Network(net.trunc());
            target.check_size(input)?;
            return Ok(target);
        }
        if let Ok(ip) = text.parse::<IpAddr>() {
            return Ok(Target::Address(ip));
        }
        if let Some((from, to)) = text.split_once('-')
            && let Ok(start) = from.parse::<IpAddr>()
        {
            let end = match (start, to.parse::<IpAddr>(), to.parse::<u8>()) {
                (_, Ok(end), _) => end,
                // 10.0.0.1-50: the last octet.
                (IpAddr::V4(v4), Err(_), Ok(last)) => {
                    let [a, b, c, _] = v4.octets();
                    IpAddr::from([a, b, c, last])
                }
                _ => {
                    return Err(bad(
                        input,
                        "expected a range like 10.0.0.1-10.0.0.50 or 10.0.0.1-50",
                    ));
                }
            };
            if start.is_ipv4() != end.is_ipv4() {
                return Err(bad(input, "a range's ends must be of one address family"));
            }
            if ip_value(end) < ip_value(start) {
                return Err(bad(input, "the range ends before it starts"));
            }
            let target = Target::Range(start, end);
            target.check_size(input)?;
            return Ok(target);
        }
        let name = text.trim_end_matches('.');
        let valid = name.len() <= 253
            && name.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                    && !label.starts_with('-')
            });
        if !valid {
            return Err(bad(
                input,
                "expected an IP address, a CIDR (10.0.0.0/24), a range (10.0.0.1-50) or a host name",
            ));
        }
        Ok(Target::Name(name.to_ascii_lowercase()))
    }

    /// How many addresses it covers (names: unknown until resolved, so 1).
    pub fn size(&self) -> u128 {
        match self {
            Target::Address(_) | Target::Name(_) => 1,
            Target::Network(net) => {
                let host_bits = u32::from(net.max_prefix_len() - net.prefix_len());
                1u128.checked_shl(host_bits).unwrap_or(u128::MAX)
            }
            Target::Range(start, end) => ip_value(*end) - ip_value(*start) + 1,
        }
    }

    fn check_size(&self, input: &str) -> Result<(), TargetError> {
        if self.size() > MAX_ADDRESSES_PER_TARGET {
            return Err(bad(
                input,
                format!(
                    "covers {} addresses; at most {MAX_ADDRESSES_PER_TARGET} per target (split it, or use a longer prefix)",
                    self.size()
                ),
            ));
        }
        Ok(())
    }

    /// Whether `ip` is one of this target's addresses (names: never, until
    /// resolved).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match self {
            Target::Address(a) => *a == ip,
            Target::Network(net) => net.contains(&ip),
            Target::Range(start, end) => {
                start.is_ipv4() == ip.is_ipv4()
                    && (ip_value(*start)..=ip_value(*end)).contains(&ip_value(ip))
            }
            Target::Name(_) => false,
        }
    }

    /// The addresses of an address, network or range (names give none here;
    /// they are resolved by the scanner).
    pub fn addresses(&self) -> Box<dyn Iterator<Item = IpAddr> + Send + '_> {
        match self {
            Target::Address(ip) => Box::new(std::iter::once(*ip)),
            Target::Network(net) => {
                let start = ip_value(net.network());
                let end = ip_value(net.broadcast());
                let v4 = net.network().is_ipv4();
                Box::new((start..=end).map(move |v| from_value(v, v4)))
            }
            Target::Range(start, end) => {
                let v4 = start.is_ipv4();
                Box::new((ip_value(*start)..=ip_value(*end)).map(move |v| from_value(v, v4)))
            }
            Target::Name(_) => Box::new(std::iter::empty()),
        }
    }
}

fn ip_value(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

fn from_value(value: u128, v4: bool) -> IpAddr {
    if v4 {
        IpAddr::from(std::net::Ipv4Addr::from(value as u32))
    } else {
        IpAddr::from(std::net::Ipv6Addr::from(value))
    }
}

/// Reads targets from a file: one per line, `#` starts a comment.
pub fn read_target_file(path: &Path) -> Result<Vec<Target>, TargetError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| bad(&path.display().to_string(), format!("cannot read: {e}")))?;
    text.lines()
        .map(|line| line.split('#').next().unwrap_or_default().trim())
        .filter(|line| !line.is_empty())
        .map(Target::parse)
        .collect()
}

/// Parses targets as the command line gives them; `@FILE` reads a file.
pub fn parse_targets(inputs: &[String]) -> Result<Vec<Target>, TargetError> {
    let mut targets = Vec::new();
    for input in inputs {
        match input.strip_prefix('@') {
            Some(file) => targets.extend(read_target_file(Path::new(file))?),
            None => targets.push(Target::parse(input)?),
        }
    }
    Ok(targets)
}

impl std::fmt::Display for Target {
    /// The target as [`Target::parse`] reads it back.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Address(ip) => write!(f, "{ip}"),
            Target::Network(net) => write!(f, "{net}"),
            Target::Range(start, end) => write!(f, "{start}-{end}"),
            Target::Name(name) => f.write_str(name),
        }
    }
}

/// Splits targets into pieces of at most `addresses` addresses each (at
/// least 1), in order, for scanning by several workers: a network or range
/// larger than that is cut into ranges, small targets share a piece, and
/// host names count as one address each (they resolve to few). Together
/// the pieces cover exactly the targets' addresses.
pub fn split(targets: &[Target], addresses: u128) -> Vec<Vec<Target>> {
    let addresses = addresses.max(1);
    let mut pieces: Vec<Vec<Target>> = Vec::new();
    let mut current: Vec<Target> = Vec::new();
    let mut room = addresses;
    let mut push = |target: Target, size: u128, current: &mut Vec<Target>, room: &mut u128| {
        current.push(target);
        *room -= size;
        if *room == 0 {
            pieces.push(std::mem::take(current));
            *room = addresses;
        }
    };
    for target in targets {
        let size = target.size();
        if size <= room {
            push(target.clone(), size, &mut current, &mut room);
            continue;
        }
        // Cut into ranges that fill the current piece, then whole pieces.
        let (start, end, v4) = match target {
            Target::Network(net) => (
                ip_value(net.network()),
                ip_value(net.broadcast()),
                net.network().is_ipv4(),
            ),
            Target::Range(a, b) => (ip_value(*a), ip_value(*b), a.is_ipv4()),
            // Addresses and names have size 1 and always fit.
            other => {
                push(other.clone(), 1, &mut current, &mut room);
                continue;
            }
        };
        let mut from = start;
        while from <= end {
            let to = end.min(from + room - 1);
            let piece = if from == to {
                Target::Address(from_value(from, v4))
            } else {
                Target::Range(from_value(from, v4), from_value(to, v4))
            };
            push(piece, to - from + 1, &mut current, &mut room);
            if to == end {
                break;
            }
            from = to + 1;
        }
    }
    if !current.is_empty() {
        pieces.push(current);
    }
    pieces
}

/// A curl-style override: scan `address` for `name` on `port`, without DNS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolve {
    /// The name, sent as SNI.
    pub name: String,
    /// The port.
    pub port: u16,
    /// Where to connect.
    pub address: IpAddr,
}

impl Resolve {
    /// Parses `NAME:PORT:ADDRESS` (IPv6 addresses may be in brackets).
    pub fn parse(input: &str) -> Result<Resolve, TargetError> {
        let expected = "expected NAME:PORT:ADDRESS, e.g. www.example.com:443:192.0.2.7";
        let mut parts = input.splitn(3, ':');
        let (Some(name), Some(port), Some(address)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(bad(input, expected));
        };
        let Ok(Target::Name(name)) = Target::parse(name) else {
            return Err(bad(
                input,
                format!("`{name}` is not a host name; {expected}"),
            ));
        };
        let port: u16 = port
            .parse()
            .map_err(|_| bad(input, format!("`{port}` is not a port; {expected}")))?;
        let address: IpAddr = address
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .map_err(|_| {
                bad(
                    input,
                    format!("`{address}` is not an IP address; {expected}"),
                )
            })?;
        Ok(Resolve {
            name,
            port,
            address,
        })
    }
}

impl std::fmt::Display for Resolve {
    /// `NAME:PORT:ADDRESS`, as [`Resolve::parse`] reads it back.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.address {
            IpAddr::V4(ip) => write!(f, "{}:{}:{ip}", self.name, self.port),
            IpAddr::V6(ip) => write!(f, "{}:{}:[{ip}]", self.name, self.port),
        }
    }
}

/// Parses a port list: `443,8443`, `8000-8010`, or a mix.
pub fn parse_ports(input: &str) -> Result<Vec<u16>, TargetError> {
    let mut ports = Vec::new();
    for part in input.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let port = |p: &str| {
            p.parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| bad(input, format!("`{p}` is not a port (1-65535)")))
        };
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (port(a)?, port(b)?);
                if b < a {
                    return Err(bad(
                        input,
                        format!("port range `{part}` ends before it starts"),
                    ));
                }
                ports.extend(a..=b);
            }
            None => ports.push(port(part)?),
        }
    }
    if ports.is_empty() {
        return Err(bad(input, "no ports; expected e.g. 443,8443"));
    }
    ports.sort_unstable();
    ports.dedup();
    Ok(ports)
}

/// The default ports: HTTPS, alternative HTTPS, LDAPS, IMAPS, POP3S, SMTPS.
pub const DEFAULT_PORTS: [u16; 6] = [443, 8443, 636, 993, 995, 465];

/// One endpoint to probe.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Endpoint {
    /// Where to connect.
    pub addr: SocketAddr,
    /// The name to send as SNI (and check the certificate against).
    pub sni: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_networks_ranges_and_names() {
        assert_eq!(
            Target::parse("192.0.2.7").unwrap(),
            Target::Address("192.0.2.7".parse().unwrap())
        );
        let net = Target::parse("10.0.0.0/30").unwrap();
        let all: Vec<IpAddr> = net.addresses().collect();
        assert_eq!(all.len(), 4);
        assert_eq!(all[3], "10.0.0.3".parse::<IpAddr>().unwrap());
        // A host address with a prefix means its network.
        assert_eq!(Target::parse("10.0.0.2/30").unwrap(), net);
        let v6: Vec<IpAddr> = Target::parse("2001:db8::/126")
            .unwrap()
            .addresses()
            .collect();
        assert_eq!(v6.len(), 4);
        let range: Vec<IpAddr> = Target::parse("10.0.0.250-10.0.1.2")
            .unwrap()
            .addresses()
            .collect();
        assert_eq!(range.len(), 9);
        assert_eq!(Target::parse("10.0.0.1-50").unwrap().size(), 50);
        assert_eq!(
            Target::parse("WWW.Example.com.").unwrap(),
            Target::Name("www.example.com".into())
        );
    }

    #[test]
    fn split_covers_every_address_once_in_pieces_of_the_size_asked() {
        let targets = parse_targets(&[
            "10.0.0.0/24".into(),
            "10.1.0.7".into(),
            "www.example.com".into(),
            "10.2.0.1-10.2.0.100".into(),
            "2001:db8::/120".into(),
        ])
        .unwrap();
        let pieces = split(&targets, 64);
        let mut covered: Vec<IpAddr> = Vec::new();
        let mut names = 0;
        for piece in &pieces {
            let size: u128 = piece.iter().map(Target::size).sum();
            assert!(size <= 64, "{piece:?}");
            for t in piece {
                // Each piece reads back from its text, as shard rows store it.
                assert_eq!(&Target::parse(&t.to_string()).unwrap(), t);
                names += usize::from(matches!(t, Target::Name(_)));
                covered.extend(t.addresses());
            }
        }
        let mut wanted: Vec<IpAddr> = targets.iter().flat_map(|t| t.addresses()).collect();
        assert_eq!(covered.len(), wanted.len(), "no address twice");
        covered.sort();
        wanted.sort();
        assert_eq!(covered, wanted);
        assert_eq!(names, 1);
        // 256 + 1 + 1 + 100 + 256 addresses: ceil(614 / 64) pieces.
        assert_eq!(pieces.len(), 10);
        assert_eq!(split(&targets, 1 << 20).len(), 1);
        assert!(split(&[], 64).is_empty());
        let resolve = Resolve::parse("a.example:8443:[2001:db8::1]").unwrap();
        assert_eq!(Resolve::parse(&resolve.to_string()).unwrap(), resolve);
    }

    #[test]
    fn bad_targets_say_what_was_expected() {
        for input in [
            "10.0.0.0/33",
            "10.0.0.5-1",
            "10.0.0.1-::1",
            "bad name!",
            "",
            "2001:db8::/64",
        ] {
            let err = Target::parse(input).unwrap_err();
            assert_eq!(err.input, input);
            assert!(!err.reason.is_empty());
        }
        assert!(
            Target::parse("2001:db8::/64")
                .unwrap_err()
                .reason
                .contains("at most")
        );
    }

    #[test]
    fn resolve_and_ports() {
        let r = Resolve::parse("www.example.com:8443:[::1]").unwrap();
        assert_eq!(
            (r.name.as_str(), r.port, r.address),
            ("www.example.com", 8443, "::1".parse().unwrap())
        );
        assert!(Resolve::parse("www.example.com:443").is_err());
        assert!(
            Resolve::parse("www.example.com:https:1.2.3.4")
                .unwrap_err()
                .reason
                .contains("port")
        );
        assert_eq!(
            parse_ports("8443, 443,440-442").unwrap(),
            vec![440, 441, 442, 443, 8443]
        );
        assert!(parse_ports("0").is_err());
        assert!(parse_ports("70000").is_err());
    }

    #[test]
    fn target_files_skip_comments() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("targets");
        std::fs::write(&path, "# estate\n10.0.0.0/31\n\nexample.org # the shop\n").unwrap();
        let targets = parse_targets(&[format!("@{}", path.display())]).unwrap();
        assert_eq!(targets.len(), 2);
    }
}
