//! Packaging checks for Certkeeper: the systemd unit, the sysusers.d and
//! tmpfiles.d entries, the cargo-deb metadata snippet and the default config,
//! all under `packaging/`.
//!
//! Wired into the daemon crate as `[[test]] name = "packaging"`, so
//! `CARGO_MANIFEST_DIR` is `daemon/` and the packaging files are found in
//! `../packaging`. Run with `cargo test -p certkeeper --test packaging`.

use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Path the unit, the deb assets and the default config use for the binary.
const INSTALLED_BINARY: &str = "/usr/bin/certkeeper";
/// Where the package installs the default config.
const CONFIG_PATH: &str = "/etc/certkeeper/certkeeper.toml";
/// Store URL of the default config.
const DEFAULT_STORE_URL: &str = "surrealkv:///var/lib/certkeeper/store";
/// cargo-deb's placeholder for the binary built by `cargo deb`.
const BUILT_BINARY_ASSET: &str = "target/release/certkeeper";

/// The daemon crate directory (`daemon/`): cargo-deb paths are relative to it.
fn crate_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A file under `packaging/`.
fn packaging_file(name: &str) -> PathBuf {
    crate_dir().join("../packaging").join(name)
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn output_text(output: &Output) -> String {
    format!(
        "exit status: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

// ---------------------------------------------------------------------------
// systemd unit file parsing (systemd.syntax(7), enough for our unit)
// ---------------------------------------------------------------------------

/// A unit file as `(section, key, value)` assignments in file order.
struct Unit {
    assignments: Vec<(String, String, String)>,
}

impl Unit {
    fn parse(text: &str) -> Result<Self, String> {
        let mut assignments = Vec::new();
        let mut section: Option<String> = None;
        let mut pending = String::new();
        let mut pending_line = 0;
        for (index, raw) in text.lines().enumerate() {
            let line_no = index + 1;
            let line = raw.trim();
            // Comments are ignored, also in the middle of a continued line.
            if line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            if pending.is_empty() {
                if line.is_empty() {
                    continue;
                }
                pending_line = line_no;
            }
            // A trailing backslash continues the value on the next line.
            if let Some(head) = line.strip_suffix('\\') {
                pending.push_str(head);
                pending.push(' ');
                continue;
            }
            pending.push_str(line);
            let logical = std::mem::take(&mut pending);

            if let Some(name) = logical.strip_prefix('[') {
                let name = name.strip_suffix(']').ok_or_else(|| {
                    format!("line {pending_line}: malformed section header {logical:?}")
                })?;
                section = Some(name.to_owned());
                continue;
            }
            let (key, value) = logical
                .split_once('=')
                .ok_or_else(|| format!("line {pending_line}: not a key=value line: {logical:?}"))?;
            let key = key.trim();
            if key.is_empty() || key.contains(char::is_whitespace) {
                return Err(format!("line {pending_line}: bad key {key:?}"));
            }
            let section = section
                .clone()
                .ok_or_else(|| format!("line {pending_line}: {key}= outside of any section"))?;
            assignments.push((section, key.to_owned(), value.trim().to_owned()));
        }
        if !pending.is_empty() {
            return Err(format!("line {pending_line}: continuation at end of file"));
        }
        Ok(Self { assignments })
    }

    /// Every value assigned to `key` in `section`, in order (empty ones included).
    fn all(&self, section: &str, key: &str) -> Vec<&str> {
        self.assignments
            .iter()
            .filter(|(s, k, _)| s == section && k == key)
            .map(|(_, _, v)| v.as_str())
            .collect()
    }

    /// The effective value of a single-valued setting: the last assignment.
    fn get(&self, section: &str, key: &str) -> &str {
        self.all(section, key)
            .last()
            .copied()
            .unwrap_or_else(|| panic!("[{section}] {key}= is missing"))
    }

    /// The effective values of a list setting: an empty assignment resets the
    /// list, as systemd does.
    fn list(&self, section: &str, key: &str) -> Vec<&str> {
        let mut values = Vec::new();
        for value in self.all(section, key) {
            if value.is_empty() {
                values.clear();
            } else {
                values.push(value);
            }
        }
        values
    }

    fn sections(&self) -> BTreeSet<&str> {
        self.assignments
            .iter()
            .map(|(s, _, _)| s.as_str())
            .collect()
    }
}

fn parse_unit() -> Unit {
    let path = packaging_file("certkeeper.service");
    Unit::parse(&read(&path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A systemd command line split into words (no quoting is used in our unit),
/// with the `-@:+!` execution prefixes removed from the program.
fn command_words(command: &str) -> Vec<&str> {
    let mut words: Vec<&str> = command.split_whitespace().collect();
    if let Some(first) = words.first_mut() {
        *first = first.trim_start_matches(['-', '@', ':', '+', '!']);
    }
    words
}

fn assert_boolean_yes(unit: &Unit, key: &str) {
    let value = unit.get("Service", key);
    assert!(
        matches!(value, "yes" | "true" | "on" | "1"),
        "[Service] {key}= should be enabled, is {value:?}"
    );
}

// ---------------------------------------------------------------------------
// (a) systemd-analyze verify
// ---------------------------------------------------------------------------

#[test]
fn systemd_analyze_verify_accepts_the_unit() {
    // tests/run.sh installs systemd: a missing systemd-analyze is a broken
    // test machine, not a reason to pass.
    if let Err(e) = Command::new("systemd-analyze").arg("--version").output() {
        panic!("cannot run systemd-analyze (tests/run.sh installs systemd): {e}");
    }

    let original = read(&packaging_file("certkeeper.service"));
    assert!(
        original.contains(INSTALLED_BINARY),
        "the unit should run {INSTALLED_BINARY}"
    );
    // verify checks that every Exec*= program exists and is executable: point
    // them at the binary cargo just built instead of the installed path.
    let unit_text = original.replace(INSTALLED_BINARY, env!("CARGO_BIN_EXE_certkeeper"));
    let dir = tempfile::tempdir().expect("create temp dir");
    let unit_path = dir.path().join("certkeeper.service");
    fs::write(&unit_path, unit_text).expect("write unit copy");

    let output = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&unit_path)
        .output()
        .expect("run systemd-analyze verify");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    // Only lines about our unit count: depending on the machine, verify also
    // complains about other units it loads (dependencies, missing users...).
    let about_unit: Vec<&str> = stdout
        .lines()
        .chain(stderr.lines())
        .filter(|line| line.contains("certkeeper.service"))
        .collect();
    assert!(
        about_unit.is_empty(),
        "systemd-analyze verify reports problems with the unit:\n{}\n\nfull output:\n{}",
        about_unit.join("\n"),
        output_text(&output)
    );
    // Any error fails the test, whatever unit it names: a unit that only
    // verifies on a lucky machine is not verified.
    assert!(
        output.status.success(),
        "systemd-analyze verify failed:\n{}",
        output_text(&output)
    );
}

// ---------------------------------------------------------------------------
// (b) required directives of the unit
// ---------------------------------------------------------------------------

#[test]
fn unit_has_required_settings() {
    let unit = parse_unit();
    assert_eq!(
        unit.sections(),
        BTreeSet::from(["Install", "Service", "Unit"]),
        "unexpected sections in the unit"
    );

    // [Unit]
    assert!(!unit.get("Unit", "Description").is_empty());
    let docs = unit.list("Unit", "Documentation");
    assert!(
        docs.iter().any(|d| d.contains("README")),
        "Documentation= should point at the README, is {docs:?}"
    );

    // Start-up, reload and supervision.
    assert_eq!(unit.get("Service", "Type"), "notify");
    assert_eq!(unit.get("Service", "NotifyAccess"), "main");
    let pre = unit.list("Service", "ExecStartPre");
    assert!(
        pre.iter()
            .any(|c| command_words(c) == [INSTALLED_BINARY, "validate", "--config", CONFIG_PATH]),
        "ExecStartPre= should validate {CONFIG_PATH}, is {pre:?}"
    );
    let start = unit.list("Service", "ExecStart");
    assert_eq!(
        start.len(),
        1,
        "exactly one ExecStart= for Type=notify, got {start:?}"
    );
    assert_eq!(
        command_words(start[0]),
        [INSTALLED_BINARY, "run", "--config", CONFIG_PATH]
    );
    let reload = unit.list("Service", "ExecReload");
    assert_eq!(reload.len(), 1, "one ExecReload=, got {reload:?}");
    let reload_words = command_words(reload[0]);
    assert!(
        reload_words[0].ends_with("/kill")
            && reload_words.contains(&"-HUP")
            && reload_words.last() == Some(&"$MAINPID"),
        "ExecReload= should send SIGHUP to $MAINPID, is {:?}",
        reload[0]
    );
    assert_eq!(unit.get("Service", "WatchdogSec"), "60");
    assert_eq!(unit.get("Service", "Restart"), "on-failure");
    let stop_timeout: u64 = unit
        .get("Service", "TimeoutStopSec")
        .parse()
        .expect("TimeoutStopSec= in plain seconds");
    assert!(
        stop_timeout > 30,
        "TimeoutStopSec= must exceed the daemon's 30 s graceful shutdown, is {stop_timeout}"
    );

    // Identity and directories.
    assert_eq!(unit.get("Service", "User"), "certkeeper");
    assert_eq!(unit.get("Service", "Group"), "certkeeper");
    assert_eq!(unit.get("Service", "StateDirectory"), "certkeeper");
    assert_eq!(unit.get("Service", "StateDirectoryMode"), "0750");
    assert_eq!(unit.get("Service", "ConfigurationDirectory"), "certkeeper");
    assert_eq!(unit.get("Service", "UMask"), "0077");
    assert_eq!(unit.get("Service", "LimitNOFILE"), "65536");

    // Sandboxing.
    assert_eq!(unit.get("Service", "ProtectSystem"), "strict");
    for key in [
        "ProtectHome",
        "PrivateTmp",
        "PrivateDevices",
        "NoNewPrivileges",
        "ProtectKernelTunables",
        "ProtectKernelModules",
        "ProtectKernelLogs",
        "ProtectControlGroups",
        "ProtectClock",
        "ProtectHostname",
        "RestrictNamespaces",
        "RestrictRealtime",
        "RestrictSUIDSGID",
        "LockPersonality",
        "MemoryDenyWriteExecute",
    ] {
        assert_boolean_yes(&unit, key);
    }
    assert_eq!(unit.get("Service", "SystemCallArchitectures"), "native");
    let filters = unit.list("Service", "SystemCallFilter");
    assert!(
        filters
            .iter()
            .any(|f| f.split_whitespace().any(|g| g == "@system-service")),
        "SystemCallFilter= should allow @system-service, is {filters:?}"
    );
    let denied: BTreeSet<&str> = filters
        .iter()
        .filter_map(|f| f.strip_prefix('~'))
        .flat_map(str::split_whitespace)
        .collect();
    assert!(
        denied.contains("@privileged") && denied.contains("@resources"),
        "SystemCallFilter= should deny @privileged and @resources, denies {denied:?}"
    );
    // A later allow list adds @chown back (deploy targets' owner/group);
    // systemd applies the lines in order, so it must come after the deny.
    let chown_back = filters
        .iter()
        .rposition(|f| !f.starts_with('~') && f.split_whitespace().any(|g| g == "@chown"));
    let last_deny = filters.iter().rposition(|f| f.starts_with('~'));
    assert!(
        chown_back > last_deny,
        "SystemCallFilter= should allow @chown after denying @privileged, is {filters:?}"
    );
    assert_eq!(
        unit.get("Service", "LimitCORE"),
        "0",
        "no core dumps of keys"
    );
    assert_eq!(unit.get("Service", "ProcSubset"), "pid");
    let denied_ips: BTreeSet<&str> = unit
        .list("Service", "IPAddressDeny")
        .into_iter()
        .flat_map(str::split_whitespace)
        .collect();
    assert!(
        denied_ips.contains("169.254.169.254"),
        "IPAddressDeny= should hold the metadata address, is {denied_ips:?}"
    );
    let families: BTreeSet<&str> = unit
        .list("Service", "RestrictAddressFamilies")
        .into_iter()
        .flat_map(str::split_whitespace)
        .collect();
    assert_eq!(families, BTreeSet::from(["AF_INET", "AF_INET6", "AF_UNIX"]));
    assert!(
        !unit.all("Service", "CapabilityBoundingSet").is_empty(),
        "CapabilityBoundingSet= must be set explicitly"
    );
    assert!(
        unit.list("Service", "CapabilityBoundingSet").is_empty(),
        "CapabilityBoundingSet= must be empty, is {:?}",
        unit.list("Service", "CapabilityBoundingSet")
    );
    assert!(
        unit.list("Service", "AmbientCapabilities").is_empty(),
        "no ambient capabilities by default"
    );

    // [Install]
    assert_eq!(unit.list("Install", "WantedBy"), ["multi-user.target"]);
}

// ---------------------------------------------------------------------------
// (c) sysusers.d and tmpfiles.d
// ---------------------------------------------------------------------------

/// The non-comment lines of a sysusers.d/tmpfiles.d file, split into fields
/// (whitespace-separated, double quotes group a field).
fn config_lines(path: &Path) -> Vec<Vec<String>> {
    let mut lines = Vec::new();
    for raw in read(path).lines() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut fields = Vec::new();
        let mut field = String::new();
        let mut in_field = false;
        let mut quoted = false;
        for c in line.chars() {
            match c {
                '"' => {
                    quoted = !quoted;
                    in_field = true;
                }
                c if c.is_whitespace() && !quoted => {
                    if in_field {
                        fields.push(std::mem::take(&mut field));
                        in_field = false;
                    }
                }
                c => {
                    field.push(c);
                    in_field = true;
                }
            }
        }
        assert!(!quoted, "{}: unbalanced quote in {line:?}", path.display());
        if in_field {
            fields.push(field);
        }
        lines.push(fields);
    }
    lines
}

#[test]
fn sysusers_creates_the_service_user() {
    let unit = parse_unit();
    let user = unit.get("Service", "User");
    let lines = config_lines(&packaging_file("certkeeper.sysusers"));
    assert_eq!(lines.len(), 1, "expected a single entry, got {lines:?}");
    let entry = &lines[0];
    // Type Name ID GECOS Home Shell
    assert!(
        entry.len() >= 5,
        "u line needs at least 5 fields: {entry:?}"
    );
    assert_eq!(entry[0], "u", "a user (and its group) entry");
    assert_eq!(entry[1], user, "the user the unit runs as");
    assert_eq!(entry[2], "-", "dynamically allocated system UID/GID");
    assert!(!entry[3].is_empty(), "GECOS");
    assert_eq!(
        entry[4], "/var/lib/certkeeper",
        "home is the state directory"
    );
    let shell = entry.get(5).map_or("-", String::as_str);
    assert!(
        matches!(
            shell,
            "-" | "/usr/sbin/nologin" | "/sbin/nologin" | "/bin/false" | "/usr/bin/false"
        ),
        "the user must not have a login shell, has {shell:?}"
    );
    assert!(entry.len() <= 6, "unexpected extra fields: {entry:?}");
}

#[test]
fn tmpfiles_creates_state_and_config_directories() {
    let unit = parse_unit();
    let state_dir = format!("/var/lib/{}", unit.get("Service", "StateDirectory"));
    let config_dir = format!("/etc/{}", unit.get("Service", "ConfigurationDirectory"));
    assert_eq!(
        Path::new(CONFIG_PATH).parent(),
        Some(Path::new(&config_dir)),
        "the unit's config file must live in its ConfigurationDirectory="
    );

    let lines = config_lines(&packaging_file("certkeeper.tmpfiles"));
    let mut by_path: HashMap<&str, &[String]> = HashMap::new();
    for entry in &lines {
        assert!(
            entry.len() >= 5,
            "Type Path Mode User Group [Age] expected: {entry:?}"
        );
        assert!(
            by_path.insert(entry[1].as_str(), &entry[..]).is_none(),
            "{} listed twice",
            entry[1]
        );
    }
    let expect = |path: &str, mode: &str, user: &str, group: &str| {
        let entry = by_path
            .get(path)
            .unwrap_or_else(|| panic!("no tmpfiles.d entry for {path}: {lines:?}"));
        assert_eq!(
            &entry[..5],
            ["d", path, mode, user, group],
            "tmpfiles.d entry for {path}"
        );
        if let Some(age) = entry.get(5) {
            assert_eq!(age, "-", "{path} must never be cleaned up by age");
        }
    };
    expect(&state_dir, "0750", "certkeeper", "certkeeper");
    expect(&config_dir, "0750", "root", "certkeeper");
    assert_eq!(by_path.len(), 2, "unexpected entries: {lines:?}");
}

// ---------------------------------------------------------------------------
// (d) cargo-deb metadata
// ---------------------------------------------------------------------------

/// One `assets` entry: `[source, dest, mode]` or `{ source, dest, mode }`.
struct Asset {
    source: String,
    dest: String,
}

impl Asset {
    fn from_value(value: &toml::Value) -> Self {
        let field = |v: Option<&toml::Value>, what: &str| -> String {
            v.and_then(toml::Value::as_str)
                .unwrap_or_else(|| panic!("asset {value} has no string {what}"))
                .to_owned()
        };
        let (source, dest, mode) = match value {
            toml::Value::Array(items) => {
                assert_eq!(
                    items.len(),
                    3,
                    "asset {value} should be [source, dest, mode]"
                );
                (
                    field(items.first(), "source"),
                    field(items.get(1), "dest"),
                    field(items.get(2), "mode"),
                )
            }
            toml::Value::Table(table) => (
                field(table.get("source"), "source"),
                field(table.get("dest"), "dest"),
                field(table.get("mode"), "mode"),
            ),
            other => panic!("asset {other} is neither an array nor a table"),
        };
        assert!(
            u32::from_str_radix(&mode, 8).is_ok_and(|m| m <= 0o7777),
            "asset {source}: bad mode {mode:?}"
        );
        assert!(
            !dest.starts_with('/'),
            "asset {source}: dest {dest:?} must be relative"
        );
        Self { source, dest }
    }

    /// The absolute path the file gets when the package is installed.
    fn installed_path(&self) -> String {
        if self.dest.ends_with('/') {
            let name = Path::new(&self.source)
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_else(|| panic!("asset {} has no file name", self.source));
            format!("/{}{}", self.dest, name)
        } else {
            format!("/{}", self.dest)
        }
    }
}

fn deb_metadata() -> toml::Table {
    let path = crate_dir().join("Cargo.toml");
    let doc: toml::Table = read(&path)
        .parse()
        .unwrap_or_else(|e| panic!("{} is not valid TOML: {e}", path.display()));
    doc.get("package")
        .and_then(|v| v.get("metadata"))
        .and_then(|v| v.get("deb"))
        .and_then(toml::Value::as_table)
        .cloned()
        .unwrap_or_else(|| panic!("{} has no [package.metadata.deb] table", path.display()))
}

fn str_key<'a>(deb: &'a toml::Table, key: &str) -> &'a str {
    deb.get(key)
        .and_then(toml::Value::as_str)
        .unwrap_or_else(|| panic!("[package.metadata.deb] {key} missing or not a string"))
}

#[test]
fn deb_metadata_is_valid_and_its_files_exist() {
    let deb = deb_metadata();
    assert!(
        str_key(&deb, "maintainer").contains('<'),
        "maintainer needs an e-mail address"
    );
    assert!(!str_key(&deb, "extended-description").trim().is_empty());
    assert_eq!(str_key(&deb, "section"), "admin");
    assert_eq!(str_key(&deb, "priority"), "optional");
    let depends: Vec<&str> = str_key(&deb, "depends").split(',').map(str::trim).collect();
    assert!(
        depends.contains(&"$auto"),
        "depends should include $auto: {depends:?}"
    );
    assert!(
        !depends.iter().any(|d| d.starts_with("adduser")),
        "the user comes from systemd-sysusers, not adduser"
    );

    let assets: Vec<Asset> = deb
        .get("assets")
        .and_then(toml::Value::as_array)
        .expect("assets array")
        .iter()
        .map(Asset::from_value)
        .collect();
    let mut installed = BTreeSet::new();
    for asset in &assets {
        if asset.source != BUILT_BINARY_ASSET {
            let source = crate_dir().join(&asset.source);
            assert!(
                source.is_file(),
                "asset source {} does not exist ({})",
                asset.source,
                source.display()
            );
        }
        assert!(
            installed.insert(asset.installed_path()),
            "two assets install {}",
            asset.installed_path()
        );
    }
    let installs = |path: &str, source_suffix: &str| {
        assert!(
            assets
                .iter()
                .any(|a| a.installed_path() == path && a.source.ends_with(source_suffix)),
            "no asset installs {source_suffix} as {path}"
        );
    };
    installs(INSTALLED_BINARY, BUILT_BINARY_ASSET);
    installs(CONFIG_PATH, "packaging/certkeeper.toml");
    installs(
        "/usr/lib/sysusers.d/certkeeper.conf",
        "packaging/certkeeper.sysusers",
    );
    installs(
        "/usr/lib/tmpfiles.d/certkeeper.conf",
        "packaging/certkeeper.tmpfiles",
    );
    installs("/usr/share/doc/certkeeper/README.md", "README.md");
    installs(
        "/usr/share/doc/certkeeper/certkeeper.example.toml",
        "contrib/certkeeper.example.toml",
    );

    // Every file installed under /etc is a conffile, and every conffile is installed.
    let conf_files: BTreeSet<String> = deb
        .get("conf-files")
        .and_then(toml::Value::as_array)
        .expect("conf-files array")
        .iter()
        .map(|v| {
            let path = v.as_str().expect("conf-files entries are strings");
            format!("/{}", path.trim_start_matches('/'))
        })
        .collect();
    let etc_files: BTreeSet<String> = installed
        .iter()
        .filter(|p| p.starts_with("/etc/"))
        .cloned()
        .collect();
    assert_eq!(
        conf_files, etc_files,
        "conf-files vs. assets installed under /etc"
    );

    // Maintainer scripts: cargo-deb replaces every occurrence of the
    // #DEBHELPER# token with its generated snippets, so each script needs it
    // exactly once, alone on its line (not also in a comment).
    let scripts_dir = crate_dir().join(str_key(&deb, "maintainer-scripts"));
    assert!(
        scripts_dir.is_dir(),
        "maintainer-scripts {} is not a directory",
        scripts_dir.display()
    );
    for script in ["preinst", "postinst", "prerm", "postrm"] {
        let path = scripts_dir.join(script);
        if path.exists() {
            let text = read(&path);
            assert!(
                text.starts_with("#!/bin/sh"),
                "{} should be a /bin/sh script",
                path.display()
            );
            assert_eq!(
                text.matches("#DEBHELPER#").count(),
                1,
                "{} must contain the #DEBHELPER# token exactly once",
                path.display()
            );
            assert!(
                text.lines().any(|line| line.trim() == "#DEBHELPER#"),
                "{}: the #DEBHELPER# token must stand alone on its line",
                path.display()
            );
        }
    }

    // systemd-units: one table (or an array of them) installing certkeeper.service.
    let units: Vec<&toml::Table> = match deb.get("systemd-units").expect("systemd-units") {
        toml::Value::Table(t) => vec![t],
        toml::Value::Array(items) => items
            .iter()
            .map(|v| v.as_table().expect("systemd-units entries are tables"))
            .collect(),
        other => panic!("systemd-units is {other}"),
    };
    let unit = units
        .iter()
        .find(|t| t.get("unit-name").and_then(toml::Value::as_str) == Some("certkeeper"))
        .expect("a systemd-units entry with unit-name = \"certkeeper\"");
    let unit_dir = unit
        .get("unit-scripts")
        .and_then(toml::Value::as_str)
        .unwrap_or_else(|| str_key(&deb, "maintainer-scripts"));
    let unit_file = crate_dir().join(unit_dir).join("certkeeper.service");
    assert!(
        unit_file.is_file(),
        "{} does not exist",
        unit_file.display()
    );
    assert_eq!(
        fs::canonicalize(&unit_file).expect("canonicalize unit file"),
        fs::canonicalize(packaging_file("certkeeper.service"))
            .expect("canonicalize packaging unit"),
        "cargo-deb must pick up packaging/certkeeper.service"
    );
    assert_eq!(
        unit.get("enable").and_then(toml::Value::as_bool),
        Some(true),
        "enable = true"
    );
    assert_eq!(
        unit.get("start").and_then(toml::Value::as_bool),
        Some(false),
        "start = false"
    );
}

// ---------------------------------------------------------------------------
// (e) the default config validates
// ---------------------------------------------------------------------------

/// Writes the default config into `dir` with the store moved into `dir`, and
/// returns the path of the copy. `extra` is appended to the file.
fn default_config_copy(dir: &Path, extra: &str) -> PathBuf {
    let text = read(&packaging_file("certkeeper.toml"));
    let quoted_default = format!("\"{DEFAULT_STORE_URL}\"");
    assert_eq!(
        text.matches(&quoted_default).count(),
        1,
        "the default config should contain {quoted_default} exactly once"
    );
    let store_url = format!("surrealkv://{}", dir.join("store").display());
    // Display of a TOML value is a correctly quoted TOML string.
    let replacement = toml::Value::String(store_url.clone()).to_string();
    let copy = format!("{}{extra}", text.replace(&quoted_default, &replacement));

    let parsed: toml::Table = copy.parse().expect("rewritten config is valid TOML");
    assert_eq!(
        parsed
            .get("store")
            .and_then(|s| s.get("url"))
            .and_then(toml::Value::as_str),
        Some(store_url.as_str())
    );
    let path = dir.join("certkeeper.toml");
    fs::write(&path, copy).expect("write config copy");
    path
}

fn validate(config: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_certkeeper"))
        .arg("validate")
        .arg("--config")
        .arg(config)
        .output()
        .expect("run certkeeper validate")
}

#[test]
fn default_config_has_only_the_documented_keys() {
    let path = packaging_file("certkeeper.toml");
    let config: toml::Table = read(&path)
        .parse()
        .unwrap_or_else(|e| panic!("{} is not valid TOML: {e}", path.display()));
    let expected: toml::Table =
        format!("[api]\nlisten = \"127.0.0.1:8787\"\n\n[store]\nurl = \"{DEFAULT_STORE_URL}\"\n")
            .parse()
            .expect("expected config parses");
    assert_eq!(
        config, expected,
        "the default config sets exactly api.listen and store.url"
    );
    assert!(
        read(&path).contains("/usr/share/doc/certkeeper/certkeeper.example.toml"),
        "the default config should point at the example config"
    );
}

#[test]
fn default_config_is_accepted_by_certkeeper_validate() {
    let dir = tempfile::tempdir().expect("create temp dir");
    let config = default_config_copy(dir.path(), "");
    let output = validate(&config);
    assert!(
        output.status.success(),
        "certkeeper validate rejected the default config {}:\n{}",
        config.display(),
        output_text(&output)
    );
}

/// Control for the test above: validate must actually read the file, so a
/// config with an unknown key (which the daemon refuses) fails.
#[test]
fn certkeeper_validate_rejects_an_unknown_key() {
    let dir = tempfile::tempdir().expect("create temp dir");
    let config = default_config_copy(dir.path(), "\n[packaging_test]\nno_such_key = true\n");
    let output = validate(&config);
    assert_eq!(
        output.status.code(),
        Some(1),
        "certkeeper validate should reject an unknown key with exit status 1:\n{}",
        output_text(&output)
    );
}
