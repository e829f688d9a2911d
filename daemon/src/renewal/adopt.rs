//! Adoption: a certificate the inventory found (network or file discovery,
//! CA import) becomes a managed certificate that renews through a
//! connector, without issuing anything now.
//!
//! The adopted certificate is the managed certificate's current one: its
//! state is written first, with the renewal time its lifetime gives, and
//! only then is the managed certificate created, so the worker never sees
//! it without a current certificate (which would order one at once). Its
//! renewals then go through the connector like any other's, and the
//! `[[certificate.deploy]]` targets where it was seen are proposed from its
//! sightings: deploy targets live in the config file (the API never takes
//! files or commands), and a `[[certificate]]` of the same name there takes
//! over the adopted state, which is kept by name.

use serde_json::json;

use super::*;
use certkeeper_model::inventory::{SightingKind, Status};
use certkeeper_store::managed::{Held, ManagedState};

/// What an adoption made, and where the certificate was seen.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Adopted {
    /// The managed certificate's name.
    pub managed: String,
    /// When it renews (Unix seconds).
    pub renew_at: i64,
    /// Endpoints it was seen at (`ip:port (sni)`): `verify` candidates.
    pub endpoints: Vec<String>,
    /// Files it was seen in: `fullchain`/`cert` candidates.
    pub files: Vec<String>,
    /// A `[[certificate]]` block with those targets for the config file,
    /// for deployment by Certkeeper (keys and reload commands filled in by
    /// the operator).
    pub config: String,
}

impl Renewer {
    /// Adopts the inventory's certificate `fingerprint` as managed
    /// certificate `name` (default: from its first name) renewing through
    /// `connector`.
    pub async fn adopt(
        &self,
        fingerprint: &str,
        connector: &str,
        name: Option<&str>,
    ) -> Result<Adopted, RequestError> {
        let fingerprint = fingerprint.replace(':', "").to_ascii_lowercase();
        let (record, sightings) = self
            .store
            .certificate(&fingerprint)
            .await
            .map_err(|e| RequestError::Failed(e.to_string()))?
            .ok_or_else(|| {
                RequestError::NotFound(format!("no certificate {fingerprint} in the inventory"))
            })?;
        let cert = &record.cert;
        if cert.is_ca {
            return Err(RequestError::Invalid(
                "a CA certificate cannot be adopted".into(),
            ));
        }
        if matches!(record.status, Status::Expired | Status::Revoked) {
            return Err(RequestError::Invalid(format!(
                "the certificate is {}: issue a new one (POST /api/v1/managed) instead",
                record.status
            )));
        }
        // Managed already when a managed certificate still in the config or
        // the API has it in service (a removed one's state may hold it too).
        let states = self
            .store
            .managed_all()
            .await
            .map_err(|e| RequestError::Failed(e.to_string()))?;
        if let Some(holder) = states.iter().find(|m| {
            m.current
                .as_ref()
                .is_some_and(|c| c.fingerprint == fingerprint)
                && self.certificate(&m.name).is_some()
        }) {
            return Err(RequestError::Conflict(format!(
                "the certificate is managed already, as `{}`",
                holder.name
            )));
        }
        let mut identifiers: Vec<String> = cert.san_dns.clone();
        identifiers.extend(cert.san_ip.iter().cloned());
        if identifiers.is_empty()
            && let Some(cn) = &cert.subject_cn
        {
            identifiers.push(cn.clone());
        }
        if identifiers.is_empty() {
            return Err(RequestError::Invalid(
                "the certificate names nothing (no SAN, no CN) to renew it for".into(),
            ));
        }
        let name = match name {
            Some(n) => n.to_owned(),
            None => default_name(&identifiers[0]),
        };
        let spec = json!({
            "name": name, "identifiers": identifiers, "connector": connector,
            "key_type": key_type(&cert.key_algorithm, cert.key_bits, cert.key_curve.as_deref()),
        });
        let config: CertificateConfig = serde_json::from_value(spec.clone())
            .map_err(|e| RequestError::Invalid(format!("not a certificate: {e}")))?;
        config
            .validate(&self.connector_names)
            .map_err(|(key, e)| RequestError::Invalid(format!("{key}: {e}")))?;
        if self.certificate(&name).is_some() {
            return Err(RequestError::Conflict(format!(
                "a managed certificate named `{name}` exists; pick another with --name"
            )));
        }
        // The state first: created only if none exists under this name.
        let mut state = ManagedState::new(&name, &worker::spec_digest(&config));
        let renew_at = timing::default_renew_at(cert.not_before, cert.not_after);
        state.current = Some(Held {
            fingerprint: cert.fingerprint.clone(),
            chain_pem: cert.pem.clone(),
            not_before: cert.not_before,
            not_after: cert.not_after,
        });
        state.renew_at = Some(renew_at);
        self.store
            .save_managed(&mut state)
            .await
            .map_err(|e| match e {
                StoreError::Changed(_) => RequestError::Conflict(format!(
                    "managed certificate `{name}` has a state already; pick another with --name"
                )),
                e => RequestError::Failed(e.to_string()),
            })?;
        self.create(spec).await?;
        let endpoints: Vec<String> = sightings
            .iter()
            .filter(|s| s.kind == SightingKind::Endpoint)
            .map(|s| s.location.clone())
            .collect();
        let files: Vec<String> = sightings
            .iter()
            .filter(|s| s.kind == SightingKind::File)
            .map(|s| s.location.clone())
            .collect();
        let config = proposed_config(&name, &identifiers, connector, &endpoints, &files);
        Ok(Adopted {
            managed: name,
            renew_at,
            endpoints,
            files,
            config,
        })
    }
}

/// A managed certificate name from an identifier: `*.example.com` gives
/// `wildcard.example.com`.
fn default_name(identifier: &str) -> String {
    identifier.replace('*', "wildcard")
}

/// The config's `key_type` for a key like the adopted certificate's, so
/// renewals keep what its servers were given (RSA under 2048 bits renews
/// at 2048).
fn key_type(algorithm: &str, bits: u32, curve: Option<&str>) -> &'static str {
    match (algorithm.to_ascii_uppercase().as_str(), curve) {
        ("EC", Some(c)) if c.contains("384") => "ecdsa_p384",
        ("EC", _) => "ecdsa_p256",
        ("ED25519", _) => "ed25519",
        ("RSA", _) if bits >= 4096 => "rsa4096",
        ("RSA", _) if bits >= 3072 => "rsa3072",
        ("RSA", _) => "rsa2048",
        _ => "ecdsa_p256",
    }
}

/// A `[[certificate]]` block deploying where the certificate was seen.
fn proposed_config(
    name: &str,
    identifiers: &[String],
    connector: &str,
    endpoints: &[String],
    files: &[String],
) -> String {
    let quoted = |items: &[String]| {
        items
            .iter()
            .map(|i| format!("{i:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut text = format!(
        "[[certificate]]\nname = {name:?}\nidentifiers = [{}]\nconnector = {connector:?}\n",
        quoted(identifiers)
    );
    let verify: Vec<String> = endpoints
        .iter()
        .map(|e| e.split(" (").next().unwrap_or(e).to_owned())
        .collect();
    for file in files {
        text.push_str(&format!(
            "[[certificate.deploy]]\nfullchain = {file:?}\nkey = \"\" # the key file beside it\n\
             reload = [] # the command that makes the server read it\n"
        ));
        if !verify.is_empty() {
            text.push_str(&format!("verify = [{}]\n", quoted(&verify)));
        }
    }
    if files.is_empty() && !verify.is_empty() {
        text.push_str(&format!(
            "[[certificate.deploy]]\nfullchain = \"\" # where the server reads it\nkey = \"\"\n\
             reload = []\nverify = [{}]\n",
            quoted(&verify)
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_types_follow_the_adopted_key() {
        assert_eq!(key_type("EC", 384, Some("P-384")), "ecdsa_p384");
        assert_eq!(key_type("EC", 256, Some("P-256")), "ecdsa_p256");
        assert_eq!(key_type("RSA", 1024, None), "rsa2048");
        assert_eq!(key_type("RSA", 3072, None), "rsa3072");
        assert_eq!(default_name("*.shop.test"), "wildcard.shop.test");
    }

    #[test]
    fn the_proposed_config_deploys_where_it_was_seen() {
        let text = proposed_config(
            "www",
            &["www.shop.test".into()],
            "digicert",
            &["10.0.0.5:443 (www.shop.test)".into()],
            &["/etc/nginx/www.pem".into()],
        );
        let parsed: toml::Value = toml::from_str(&text).unwrap();
        let deploy = &parsed["certificate"][0]["deploy"][0];
        assert_eq!(deploy["fullchain"].as_str(), Some("/etc/nginx/www.pem"));
        assert_eq!(deploy["verify"][0].as_str(), Some("10.0.0.5:443"));
        assert_eq!(
            parsed["certificate"][0]["connector"].as_str(),
            Some("digicert")
        );
    }
}
