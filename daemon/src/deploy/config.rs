//! `[[certificate.deploy]]`: where one certificate's files go on a server, who
//! owns them, how the service is reloaded and which endpoints prove it worked.
//!
//! Serde refuses unknown keys and malformed values (modes, endpoints);
//! [`DeployTarget::validate`] checks what serde cannot (at least one file,
//! absolute and distinct paths, a password for PKCS#12, no world-readable key)
//! and names the key at fault, so `certkeeper validate` catches it before the
//! first renewal does. User and group names are looked up at deploy time, not
//! here: a service account may be created after the daemon starts.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use certkeeper_base::Secret;

/// One deploy target: the files of one certificate on one server, and how to
/// make the service pick them up.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeployTarget {
    /// The leaf certificate alone, PEM.
    pub cert: Option<PathBuf>,
    /// The private key, PEM, as issued (nginx `ssl_certificate_key`, Apache
    /// `SSLCertificateKeyFile`).
    pub key: Option<PathBuf>,
    /// The intermediate certificates, PEM, leaf excluded.
    pub chain: Option<PathBuf>,
    /// The leaf followed by the intermediates, PEM (nginx `ssl_certificate`,
    /// HAProxy `crt` without the key).
    pub fullchain: Option<PathBuf>,
    /// A PKCS#12 bundle (key, leaf and intermediates), encrypted with AES-256
    /// under `pkcs12_password`. Needs `pkcs12_password` or
    /// `pkcs12_password_file`.
    pub pkcs12: Option<PathBuf>,
    /// Password of the `pkcs12` bundle.
    pub pkcs12_password: Option<Secret>,
    /// File holding the `pkcs12` password (systemd `LoadCredential=`), read at
    /// each deploy so a rotated password is picked up.
    pub pkcs12_password_file: Option<PathBuf>,
    /// Friendly name of the key and certificate in the `pkcs12` bundle (the
    /// alias Java's `keytool` shows). Default: none.
    pub pkcs12_name: Option<String>,
    /// Owner of the written files: a user name or a numeric uid. Default: the
    /// daemon's user.
    pub owner: Option<String>,
    /// Group of the written files: a group name or a numeric gid. Default: the
    /// daemon's group.
    pub group: Option<String>,
    /// Permissions of every written file, as an octal string such as `"0640"`.
    /// Default `0600` for `key` and `pkcs12`, `0644` for the others. A mode
    /// that lets other users read is refused when `key` or `pkcs12` is set.
    pub mode: Option<Mode>,
    /// Command that makes the service load the new files, as program and
    /// arguments, run without a shell, e.g. `["systemctl", "reload",
    /// "nginx"]`. Default: none (the service reads the files itself).
    pub reload: Option<Vec<String>>,
    /// Seconds after which `reload` is killed (with every process it started)
    /// and the deploy rolled back. Default 30.
    #[serde(default = "default_reload_timeout")]
    pub reload_timeout_seconds: u64,
    /// Environment variables `reload` gets, beyond `PATH` and `LANG`
    /// (the daemon's own environment never reaches it), e.g.
    /// `{ KUBECONFIG = "/etc/certkeeper/kube" }`. Default: none.
    #[serde(default)]
    pub reload_environment: std::collections::BTreeMap<String, String>,
    /// Endpoints that must serve the new certificate after the reload, as
    /// `host:port` (`[::1]:443` for IPv6). A failed check rolls the deploy
    /// back. Default: none.
    #[serde(default)]
    pub verify: Vec<Endpoint>,
    /// Server name sent (SNI) when checking `verify` endpoints. Default: the
    /// endpoint's host.
    pub sni: Option<String>,
}

fn default_reload_timeout() -> u64 {
    30
}

/// A `verify` endpoint: where the live certificate is checked.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Endpoint {
    /// Host name or IP address (IPv6 without brackets).
    pub host: String,
    /// TCP port.
    pub port: u16,
}

impl TryFrom<String> for Endpoint {
    type Error = String;

    fn try_from(value: String) -> Result<Self, String> {
        Self::parse(&value)
    }
}

impl Endpoint {
    /// Parses `host:port` or `[v6]:port`.
    pub fn parse(value: &str) -> Result<Self, String> {
        let expected = || format!("`{value}` is not host:port (e.g. `www.example.com:443`)");
        let (host, port) = value.rsplit_once(':').ok_or_else(expected)?;
        let host = match host.strip_prefix('[') {
            Some(v6) => v6.strip_suffix(']').ok_or_else(expected)?,
            None if host.contains(':') => {
                return Err(format!("{}; write IPv6 as [::1]:443", expected()));
            }
            None => host,
        };
        let port: u16 = port.parse().map_err(|_| expected())?;
        if host.is_empty() || port == 0 || host.chars().any(char::is_whitespace) {
            return Err(expected());
        }
        Ok(Self {
            host: host.to_string(),
            port,
        })
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// File permissions parsed from an octal string such as `"0640"`.
///
/// Only the permission bits (at most `0777`) are accepted: setuid, setgid
/// and sticky bits mean nothing on a certificate. TOML integers are refused
/// on purpose, since `mode = 640` would silently mean decimal 640.
#[derive(Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Mode(u32);

impl Mode {
    /// Permissions of key files when `mode` is not set.
    pub const KEY: Mode = Mode(0o600);
    /// Permissions of certificate files when `mode` is not set.
    pub const PUBLIC: Mode = Mode(0o644);

    /// Parses three or four octal digits, e.g. `640` or `0640`.
    pub fn parse(value: &str) -> Result<Self, String> {
        let digits = value.strip_prefix("0o").unwrap_or(value);
        let bits = if (3..=4).contains(&digits.len()) {
            u32::from_str_radix(digits, 8).ok()
        } else {
            None
        };
        match bits {
            Some(bits) if bits <= 0o777 => Ok(Self(bits)),
            _ => Err(format!(
                "`{value}` is not a file mode; expected octal permissions from 0000 to 0777, e.g. \"0640\""
            )),
        }
    }

    /// The permission bits.
    pub fn bits(self) -> u32 {
        self.0
    }
}

impl TryFrom<String> for Mode {
    type Error = String;

    fn try_from(value: String) -> Result<Self, String> {
        Self::parse(&value)
    }
}

impl fmt::Debug for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04o}", self.0)
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04o}", self.0)
    }
}

/// A deploy target that [`DeployTarget::validate`] refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("key `{key}`: {message}")]
pub struct InvalidTarget {
    /// The offending key within the target table, e.g. `mode`. The config
    /// layer prefixes it with the table's path (`certificate[0].deploy[1]`).
    pub key: &'static str,
    /// What was wrong and what was expected.
    pub message: String,
}

/// Which file of a target: the keys naming paths, in the order they are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// `chain`: intermediates.
    Chain,
    /// `cert`: the leaf.
    Cert,
    /// `fullchain`: leaf and intermediates.
    Fullchain,
    /// `pkcs12`: the encrypted bundle.
    Pkcs12,
    /// `key`: the private key.
    Key,
}

impl FileKind {
    /// The config key naming this file.
    pub fn key(self) -> &'static str {
        match self {
            Self::Chain => "chain",
            Self::Cert => "cert",
            Self::Fullchain => "fullchain",
            Self::Pkcs12 => "pkcs12",
            Self::Key => "key",
        }
    }

    /// Whether the file holds the private key (and so defaults to `0600`).
    pub fn is_secret(self) -> bool {
        matches!(self, Self::Key | Self::Pkcs12)
    }
}

impl DeployTarget {
    /// The configured files, in the order they are written.
    pub fn files(&self) -> Vec<(FileKind, &Path)> {
        [
            (FileKind::Chain, &self.chain),
            (FileKind::Cert, &self.cert),
            (FileKind::Fullchain, &self.fullchain),
            (FileKind::Pkcs12, &self.pkcs12),
            (FileKind::Key, &self.key),
        ]
        .into_iter()
        .filter_map(|(kind, path)| path.as_deref().map(|p| (kind, p)))
        .collect()
    }

    /// The mode a file of this kind is written with.
    pub fn mode_for(&self, kind: FileKind) -> Mode {
        match (self.mode, kind.is_secret()) {
            (Some(mode), _) => mode,
            (None, true) => Mode::KEY,
            (None, false) => Mode::PUBLIC,
        }
    }

    /// A short name for logs and errors: the path a reader would recognise
    /// first (`fullchain`, else `cert`, `pkcs12`, `key`, `chain`).
    pub fn label(&self) -> String {
        [
            &self.fullchain,
            &self.cert,
            &self.pkcs12,
            &self.key,
            &self.chain,
        ]
        .into_iter()
        .flatten()
        .next()
        .map(|path| path.display().to_string())
        .unwrap_or_else(|| "(no files)".into())
    }

    /// The PKCS#12 password, inline or read from `pkcs12_password_file`.
    pub fn pkcs12_password(&self) -> Result<Secret, InvalidTarget> {
        match (&self.pkcs12_password, &self.pkcs12_password_file) {
            (Some(password), None) => Ok(password.clone()),
            (None, Some(file)) => Secret::from_file(file).map_err(|e| InvalidTarget {
                key: "pkcs12_password_file",
                message: format!("cannot read {}: {e}", file.display()),
            }),
            (Some(_), Some(_)) => Err(InvalidTarget {
                key: "pkcs12_password",
                message: "give either pkcs12_password or pkcs12_password_file, not both".into(),
            }),
            (None, None) => Err(InvalidTarget {
                key: "pkcs12_password",
                message: "pkcs12 needs pkcs12_password or pkcs12_password_file".into(),
            }),
        }
    }

    /// Checks what serde cannot; the error names the key at fault.
    pub fn validate(&self) -> Result<(), InvalidTarget> {
        let err = |key: &'static str, message: String| InvalidTarget { key, message };
        let files = self.files();
        if files.is_empty() {
            return Err(err(
                "cert",
                "expected at least one of cert, key, chain, fullchain or pkcs12".into(),
            ));
        }
        for (i, (kind, path)) in files.iter().enumerate() {
            if !path.is_absolute() || path.file_name().is_none() {
                return Err(err(
                    kind.key(),
                    format!("`{}` is not an absolute file path", path.display()),
                ));
            }
            if let Some((other, _)) = files[..i].iter().find(|(_, p)| p == path) {
                return Err(err(
                    kind.key(),
                    format!("`{}` is also the `{}` path", path.display(), other.key()),
                ));
            }
        }
        if self.pkcs12.is_some() {
            self.pkcs12_password()?;
        } else {
            for (key, set) in [
                ("pkcs12_password", self.pkcs12_password.is_some()),
                ("pkcs12_password_file", self.pkcs12_password_file.is_some()),
                ("pkcs12_name", self.pkcs12_name.is_some()),
            ] {
                if set {
                    return Err(err(key, "only meaningful with `pkcs12`".into()));
                }
            }
        }
        if let Some(mode) = self.mode
            && mode.bits() & 0o007 != 0
            && files.iter().any(|(kind, _)| kind.is_secret())
        {
            return Err(err(
                "mode",
                format!(
                    "{mode} would let every local user read the private key; use e.g. \"0640\" with `group`, or leave mode unset"
                ),
            ));
        }
        for (key, value) in [("owner", &self.owner), ("group", &self.group)] {
            if let Some(name) = value
                && (name.is_empty() || name.contains(':') || name.chars().any(char::is_whitespace))
            {
                return Err(err(
                    key,
                    format!("`{name}` is not a {key} name or numeric id"),
                ));
            }
        }
        if let Some(reload) = &self.reload
            && reload.first().is_none_or(|program| program.is_empty())
        {
            return Err(err(
                "reload",
                "expected a program and its arguments, e.g. [\"systemctl\", \"reload\", \"nginx\"]"
                    .into(),
            ));
        }
        if self.reload_timeout_seconds == 0 {
            return Err(err(
                "reload_timeout_seconds",
                "expected a number of seconds above 0".into(),
            ));
        }
        if let Some(sni) = &self.sni {
            if self.verify.is_empty() {
                return Err(err("sni", "only meaningful with `verify`".into()));
            }
            if sni.is_empty() || sni.contains(':') || sni.chars().any(char::is_whitespace) {
                return Err(err("sni", format!("`{sni}` is not a server name")));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(toml: &str) -> Result<DeployTarget, String> {
        toml::from_str::<DeployTarget>(toml).map_err(|e| e.to_string())
    }

    fn valid(toml: &str) -> Result<DeployTarget, InvalidTarget> {
        let target = parse(toml).unwrap();
        target.validate().map(|()| target)
    }

    #[test]
    fn a_full_target_parses_with_defaults() {
        let t = valid(
            "fullchain = \"/etc/nginx/tls/site.pem\"\nkey = \"/etc/nginx/tls/site.key\"\nreload = [\"systemctl\", \"reload\", \"nginx\"]\nverify = [\"www.example.com:443\", \"[::1]:8443\"]\n",
        )
        .unwrap();
        assert_eq!(t.reload_timeout_seconds, 30);
        assert_eq!(t.mode_for(FileKind::Key), Mode::KEY);
        assert_eq!(t.mode_for(FileKind::Fullchain), Mode::PUBLIC);
        assert_eq!(t.verify[1].host, "::1");
        assert_eq!(t.verify[1].to_string(), "[::1]:8443");
        assert_eq!(t.label(), "/etc/nginx/tls/site.pem");
    }

    #[test]
    fn a_misspelt_key_is_refused_by_name() {
        let err = parse("fulchain = \"/x.pem\"\n").unwrap_err();
        assert!(err.contains("fulchain"), "{err}");
        assert!(err.contains("fullchain"), "expected keys are listed: {err}");
    }

    #[test]
    fn a_target_without_files_is_refused() {
        let err = valid("reload = [\"true\"]\n").unwrap_err();
        assert_eq!(err.key, "cert");
        assert!(err.message.contains("at least one"), "{err}");
    }

    #[test]
    fn bad_modes_are_refused() {
        for bad in ["\"rw-r--r--\"", "\"0999\"", "\"01777\"", "\"7\"", "640"] {
            let err = parse(&format!("cert = \"/c.pem\"\nmode = {bad}\n")).unwrap_err();
            assert!(err.contains("mode"), "{bad}: {err}");
        }
        let t = valid("cert = \"/c.pem\"\nmode = \"0640\"\n").unwrap();
        assert_eq!(t.mode_for(FileKind::Cert).bits(), 0o640);
        let err = valid("key = \"/k.pem\"\nmode = \"0644\"\n").unwrap_err();
        assert_eq!(err.key, "mode", "{err}");
    }

    #[test]
    fn paths_and_options_are_checked_key_by_key() {
        let cases = [
            ("cert = \"relative.pem\"\n", "cert"),
            ("cert = \"/a.pem\"\nfullchain = \"/a.pem\"\n", "fullchain"),
            ("pkcs12 = \"/a.p12\"\n", "pkcs12_password"),
            (
                "cert = \"/a.pem\"\npkcs12_password = \"pw\"\n",
                "pkcs12_password",
            ),
            ("cert = \"/a.pem\"\nowner = \"www data\"\n", "owner"),
            ("cert = \"/a.pem\"\nreload = []\n", "reload"),
            (
                "cert = \"/a.pem\"\nreload_timeout_seconds = 0\n",
                "reload_timeout_seconds",
            ),
            ("cert = \"/a.pem\"\nsni = \"a.test\"\n", "sni"),
        ];
        for (toml, key) in cases {
            let err = valid(toml).unwrap_err();
            assert_eq!(err.key, key, "{toml}: {err}");
        }
        let err = parse("cert = \"/a.pem\"\nverify = [\"a.test\"]\n").unwrap_err();
        assert!(err.contains("verify") && err.contains("host:port"), "{err}");
        let err = parse("cert = \"/a.pem\"\nverify = [\"::1:443\"]\n").unwrap_err();
        assert!(err.contains("[::1]:443"), "{err}");
    }

    #[test]
    fn debug_never_shows_the_password() {
        let t = valid("pkcs12 = \"/a.p12\"\npkcs12_password = \"hunter2\"\n").unwrap();
        let debug = format!("{t:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(debug.contains("[redacted]"), "{debug}");
    }

    #[test]
    fn password_file_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("p12");
        std::fs::write(&file, "s3cret\n").unwrap();
        let t = valid(&format!(
            "pkcs12 = \"/a.p12\"\npkcs12_password_file = {:?}\n",
            file
        ))
        .unwrap();
        assert_eq!(t.pkcs12_password().unwrap().expose(), "s3cret");
        let missing = dir.path().join("nope");
        let err = valid(&format!(
            "pkcs12 = \"/a.p12\"\npkcs12_password_file = {:?}\n",
            missing
        ))
        .unwrap_err();
        assert_eq!(err.key, "pkcs12_password_file");
    }
}
