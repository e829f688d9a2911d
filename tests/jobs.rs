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
