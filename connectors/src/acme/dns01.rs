//! DNS-01 challenges (RFC 8555 section 8.4) through RFC 2136 dynamic updates.
//!
//! The challenge record `_acme-challenge.{name}` is added with an UPDATE
//! signed with TSIG (RFC 8945, HMAC-SHA256) sent to the zone's primary, then
//! the configured resolvers are queried until every one of them shows it, so
//! the CA is not asked to validate before the record is out; it is removed
//! once the order is done. Updates and queries go over TCP, which every
//! primary accepts for UPDATE and which never truncates.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hickory_proto::op::{Message, Query, ResponseCode, update_message};
use hickory_proto::rr::rdata::TXT;
use hickory_proto::rr::rdata::tsig::TsigAlgorithm;
use hickory_proto::rr::{Name, RData, Record, RecordSet, RecordType, TSigner};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::Dns01Settings;
use crate::ConnectorError;

/// Seconds of clock difference the primary may accept in a TSIG signature.
const TSIG_FUDGE: u16 = 300;

/// A challenge record: its name and its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChallengeRecord {
    /// `_acme-challenge.{identifier}.`
    pub name: Name,
    /// The base64url SHA-256 digest of the key authorization.
    pub value: String,
}

/// Adds, checks and removes challenge records for one connector.
pub struct Dns01Updater {
    connector: String,
    settings: Dns01Settings,
    zones: Vec<Name>,
    signer: TSigner,
    request_timeout: Duration,
}

impl Dns01Updater {
    /// An updater for `settings`; checks the zones and the TSIG key.
    pub fn new(
        connector: &str,
        settings: Dns01Settings,
        request_timeout: Duration,
    ) -> Result<Self, String> {
        let zones = settings
            .zones
            .iter()
            .map(|zone| fqdn(zone).map_err(|e| format!("DNS-01 zone `{zone}`: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        if zones.is_empty() {
            return Err("DNS-01 needs at least one zone".into());
        }
        let key = STANDARD
            .decode(settings.tsig_secret.expose().trim())
            .map_err(|_| {
                format!(
                    "the TSIG secret of key `{}` is not base64",
                    settings.tsig_key_name
                )
            })?;
        let key_name = fqdn(&settings.tsig_key_name)
            .map_err(|e| format!("TSIG key name `{}`: {e}", settings.tsig_key_name))?;
        let signer = TSigner::new(key, TsigAlgorithm::HmacSha256, key_name, TSIG_FUDGE)
            .map_err(|e| format!("TSIG key `{}`: {e}", settings.tsig_key_name))?;
        Ok(Self {
            connector: connector.to_owned(),
            settings,
            zones,
            signer,
            request_timeout,
        })
    }

    /// The record proving control of `identifier` (a DNS name without any
    /// `*.` wildcard label).
    pub fn record(
        &self,
        identifier: &str,
        value: String,
    ) -> Result<ChallengeRecord, ConnectorError> {
        let name = fqdn(&format!("_acme-challenge.{identifier}")).map_err(|e| {
            ConnectorError::permanent(&self.connector, format!("`{identifier}`: {e}"))
        })?;
        Ok(ChallengeRecord { name, value })
    }

    /// Adds `record` at the primary.
    pub async fn add(&self, record: &ChallengeRecord) -> Result<(), ConnectorError> {
        let zone = self.zone_of(&record.name)?;
        let message = update_message::append(self.rrset(record), zone, false, false);
        self.update(message, "adding", record).await
    }

    /// Removes `record` from the primary.
    pub async fn remove(&self, record: &ChallengeRecord) -> Result<(), ConnectorError> {
        let zone = self.zone_of(&record.name)?;
        let message = update_message::delete_by_rdata(self.rrset(record), zone, false);
        self.update(message, "removing", record).await
    }

    /// Waits until every resolver answers every record, or the propagation
    /// timeout passes.
    pub async fn wait_visible(&self, records: &[ChallengeRecord]) -> Result<(), ConnectorError> {
        let resolvers = match self.settings.resolvers.is_empty() {
            true => vec![self.settings.primary],
            false => self.settings.resolvers.clone(),
        };
        let mut pending: Vec<_> = resolvers
            .iter()
            .flat_map(|resolver| records.iter().map(move |record| (*resolver, record)))
            .collect();
        let deadline = tokio::time::Instant::now() + self.settings.propagation_timeout;
        let mut last_error = None;
        loop {
            let mut still = Vec::new();
            for (resolver, record) in pending {
                match self.visible_at(resolver, record).await {
                    Ok(true) => {}
                    Ok(false) => still.push((resolver, record)),
                    Err(e) => {
                        last_error = Some(e);
                        still.push((resolver, record));
                    }
                }
            }
            pending = still;
            if pending.is_empty() {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                let missing: Vec<String> = pending
                    .iter()
                    .map(|(resolver, record)| format!("{} at {resolver}", record.name))
                    .collect();
                let cause = last_error
                    .map(|e| format!(" (last error: {e})"))
                    .unwrap_or_default();
                return Err(ConnectorError::transient(
                    &self.connector,
                    format!(
                        "DNS-01: TXT record not visible within {:?}: {}{cause}",
                        self.settings.propagation_timeout,
                        missing.join(", ")
                    ),
                ));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    async fn visible_at(
        &self,
        resolver: std::net::SocketAddr,
        record: &ChallengeRecord,
    ) -> Result<bool, String> {
        let mut query = Message::query();
        query.metadata.recursion_desired = true;
        query.add_query(Query::query(record.name.clone(), RecordType::TXT));
        let bytes = query.to_vec().map_err(|e| e.to_string())?;
        let answer = exchange(resolver, &bytes, self.request_timeout).await?;
        let answer = Message::from_vec(&answer).map_err(|e| e.to_string())?;
        Ok(answer.answers.iter().any(|rr| match &rr.data {
            RData::TXT(txt) => txt.txt_data.concat() == record.value.as_bytes(),
            _ => false,
        }))
    }

    fn rrset(&self, record: &ChallengeRecord) -> RecordSet {
        let txt = RData::TXT(TXT::new(vec![record.value.clone()]));
        RecordSet::from(Record::from_rdata(
            record.name.clone(),
            self.settings.ttl,
            txt,
        ))
    }

    fn zone_of(&self, name: &Name) -> Result<Name, ConnectorError> {
        self.zones
            .iter()
            .filter(|zone| zone.zone_of(name))
            .max_by_key(|zone| zone.num_labels())
            .cloned()
            .ok_or_else(|| {
                ConnectorError::permanent(
                    &self.connector,
                    format!("DNS-01: no configured zone contains {name}"),
                )
            })
    }

    async fn update(
        &self,
        mut message: Message,
        doing: &str,
        record: &ChallengeRecord,
    ) -> Result<(), ConnectorError> {
        let fail = |class: fn(&str, String) -> ConnectorError, why: String| {
            class(
                &self.connector,
                format!(
                    "DNS-01: {doing} {} at {}: {why}",
                    record.name, self.settings.primary
                ),
            )
        };
        let transient = |c: &str, m: String| ConnectorError::transient(c, m);
        let permanent = |c: &str, m: String| ConnectorError::permanent(c, m);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let verifier = message
            .finalize(&self.signer, now)
            .map_err(|e| fail(permanent, format!("cannot sign: {e}")))?;
        let bytes = message
            .to_vec()
            .map_err(|e| fail(permanent, format!("cannot encode: {e}")))?;
        let answer = exchange(self.settings.primary, &bytes, self.request_timeout)
            .await
            .map_err(|e| fail(transient, e))?;
        let parsed =
            Message::from_vec(&answer).map_err(|e| fail(transient, format!("bad answer: {e}")))?;
        if parsed.metadata.id != message.metadata.id {
            return Err(fail(transient, "answer to another message".into()));
        }
        match parsed.metadata.response_code {
            ResponseCode::NoError => {}
            code @ (ResponseCode::NotAuth | ResponseCode::Refused | ResponseCode::NotZone) => {
                return Err(fail(
                    permanent,
                    format!(
                        "the primary refused the update ({code}); check the TSIG key and the zone's update policy"
                    ),
                ));
            }
            code => return Err(fail(transient, format!("the primary answered {code}"))),
        }
        if let Some(mut verifier) = verifier {
            verifier
                .verify(&answer)
                .map_err(|e| fail(transient, format!("the answer's TSIG does not verify: {e}")))?;
        }
        Ok(())
    }
}

/// One DNS message over TCP (RFC 1035 section 4.2.2), under `timeout`.
async fn exchange(
    server: std::net::SocketAddr,
    message: &[u8],
    timeout: Duration,
) -> Result<Vec<u8>, String> {
    let length = u16::try_from(message.len()).map_err(|_| "message too long".to_owned())?;
    let talk = async {
        let mut stream = TcpStream::connect(server).await?;
        let mut framed = Vec::with_capacity(message.len() + 2);
        framed.extend_from_slice(&length.to_be_bytes());
        framed.extend_from_slice(message);
        stream.write_all(&framed).await?;
        let mut length = [0u8; 2];
        stream.read_exact(&mut length).await?;
        let mut answer = vec![0u8; usize::from(u16::from_be_bytes(length))];
        stream.read_exact(&mut answer).await?;
        Ok::<_, std::io::Error>(answer)
    };
    match tokio::time::timeout(timeout, talk).await {
        Ok(Ok(answer)) => Ok(answer),
        Ok(Err(e)) => Err(format!("{server}: {e}")),
        Err(_) => Err(format!("{server}: no answer within {timeout:?}")),
    }
}

/// `name` as a fully qualified, lower-case DNS name.
fn fqdn(name: &str) -> Result<Name, String> {
    let mut parsed =
        Name::from_utf8(name.trim().to_ascii_lowercase()).map_err(|e| e.to_string())?;
    parsed.set_fqdn(true);
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acme::Secret;

    fn updater(zones: &[&str]) -> Dns01Updater {
        let settings = Dns01Settings::new(
            "127.0.0.1:53".parse().expect("address"),
            zones.iter().map(|z| z.to_string()).collect(),
            "certkeeper",
            Secret::new("c2VjcmV0LXNlY3JldC1zZWNyZXQ="),
        );
        Dns01Updater::new("ca", settings, Duration::from_secs(1)).expect("updater")
    }

    #[test]
    fn records_go_into_the_longest_matching_zone() {
        let updater = updater(&["example.com", "dev.example.com."]);
        let record = updater
            .record("web.dev.example.com", "v".into())
            .expect("record");
        assert_eq!(
            record.name.to_string(),
            "_acme-challenge.web.dev.example.com."
        );
        let zone = updater.zone_of(&record.name).expect("zone");
        assert_eq!(zone.to_string(), "dev.example.com.");
        let outside = updater.record("example.org", "v".into()).expect("record");
        let err = updater.zone_of(&outside.name).expect_err("no zone");
        assert_eq!(err.class, crate::ErrorClass::Permanent);
    }

    #[test]
    fn a_bad_tsig_secret_is_refused_without_showing_it() {
        let mut settings = Dns01Settings::new(
            "127.0.0.1:53".parse().expect("address"),
            vec!["example.com".into()],
            "certkeeper",
            Secret::new("%%%secret%%%"),
        );
        settings.resolvers.clear();
        let err = Dns01Updater::new("ca", settings, Duration::from_secs(1))
            .err()
            .expect("not base64");
        assert!(err.contains("certkeeper"));
        assert!(!err.contains("%%%secret%%%"));
    }
}
