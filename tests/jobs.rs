//! Jobs end to end: a daemon killed with SIGKILL in the middle of a job run
//! resumes that same run after restart, once the dead holder's lease lapses.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{Daemon, eventually};

#[test]
fn a_run_killed_mid_job_resumes_after_restart() {
    let mut daemon = Daemon::new("");
    let attempts = daemon.path("attempts");
    let pid_file = daemon.path("sleeper.pid");
    // First attempt records itself and hangs; any later attempt succeeds.
    let script = format!(
        "n=$(cat {a} 2>/dev/null | wc -l); echo run >> {a}; if [ \"$n\" -ge 1 ]; then exit 0; fi; echo $$ > {p}; exec sleep 600",
        a = attempts.display(),
        p = pid_file.display()
    );
    daemon.write_config(&format!(
        "[scheduler]\nlease_seconds = 3\n\n[[job]]\ntype = \"command\"\nname = \"slow\"\nschedule = \"* * * * * *\"\ncommand = [\"sh\", \"-c\", {script:?}]\n"
    ));
    daemon.start();
    eventually(Duration::from_secs(30), || pid_file.exists().then_some(()))
        .expect("the job started");
    daemon.signal("KILL");
    daemon.wait_exit(Duration::from_secs(10));
    // The orphaned `sleep` belongs to the test now.
    if let Ok(pid) = std::fs::read_to_string(&pid_file) {
        let _ = std::process::Command::new("kill").arg(pid.trim()).status();
    }
    let runs = daemon.cli_json(&["jobs", "--runs", "slow"]);
    let first = runs.as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        first["state"], "running",
        "the killed run is still on record: {runs}"
    );
    let due = first["due"].as_i64().unwrap();

    daemon.start();
    let resumed = eventually(Duration::from_secs(60), || {
        let runs = daemon.cli_json(&["jobs", "--runs", "slow"]);
        runs.as_array()
            .unwrap()
            .iter()
            .find(|r| r["due"] == due && r["state"] == "succeeded")
            .cloned()
    })
    .unwrap_or_else(|| panic!("the run never resumed; log:\n{}", daemon.log()));
    assert_eq!(resumed["attempts"], 2, "{resumed}");
    assert!(
        daemon.log().contains("resuming a job run"),
        "{}",
        daemon.log()
    );
    let jobs = daemon.cli_json(&["jobs"]);
    let slow = jobs
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["name"] == "slow")
        .unwrap();
    assert!(slow["runs"].as_i64().unwrap() >= 1);
    assert_eq!(slow["failures"], 0);
}

/// What jobs do is an event others can be told of: a failed run is one
/// `job_failed` per run (not per retry of the store), and a certificate that
/// discovery finds for the first time is one `certificate_discovered`, however
/// often it is seen again.
#[test]
fn failed_runs_and_first_sightings_are_events() {
    let mut daemon = Daemon::new("");
    let pki = daemon.path("pki");
    std::fs::create_dir_all(&pki).unwrap();
    let pem = common::self_signed(&pki, "found.example.test", 90);
    std::fs::write(pki.join("found.pem"), &pem).unwrap();
    daemon.write_config(&format!(
        "[[job]]\ntype = \"command\"\nname = \"broken\"\nschedule = \"*/2 * * * * *\"\n\
         command = [\"sh\", \"-c\", \"echo the disk is full >&2; exit 3\"]\n\n\
         [[discovery.files]]\nname = \"pki-files\"\nschedule = \"* * * * * *\"\nroots = [{pki:?}]\n"
    ));
    daemon.start();
    let events = |kind: &str| -> Vec<serde_json::Value> {
        let (status, body) = daemon.get("/api/v1/events?limit=1000");
        assert_eq!(status, 200, "{body}");
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        body["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"]["type"] == kind)
            .cloned()
            .collect()
    };
    let failed = eventually(Duration::from_secs(30), || {
        let failed = events("job_failed");
        (failed.len() >= 2).then_some(failed)
    })
    .unwrap_or_else(|| panic!("no job_failed events:\n{}", daemon.log()));
    for event in &failed {
        assert_eq!(event["kind"]["job"], "broken", "{event}");
        assert!(
            event["kind"]["error"]
                .as_str()
                .is_some_and(|e| e.contains("the disk is full")),
            "the event says why: {event}"
        );
    }
    let mut ids: Vec<&str> = failed.iter().map(|e| e["id"].as_str().unwrap()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(
        ids.len(),
        failed.len(),
        "one event per failed run: {failed:?}"
    );
    // Several scans of the same file later, still one discovery event.
    eventually(Duration::from_secs(30), || {
        let runs = daemon.cli_json(&["jobs", "--runs", "pki-files"]);
        let done = runs
            .as_array()?
            .iter()
            .filter(|r| r["state"] == "succeeded")
            .count();
        (done >= 3).then_some(())
    })
    .unwrap_or_else(|| panic!("the file scan did not run three times:\n{}", daemon.log()));
    let fingerprint = common::fingerprint(&pki, "found.pem");
    let discovered = events("certificate_discovered");
    assert_eq!(discovered.len(), 1, "{discovered:?}");
    assert_eq!(
        discovered[0]["certificate"]["fingerprint"], fingerprint,
        "{discovered:?}"
    );
}
