//! Job runs and their leases.
//!
//! Every run of a scheduled job is a row `job_run:[name, due]` written before
//! the job does anything. Claiming a run means creating that row with a lease
//! (holder + expiry), or taking over a `running` row whose lease has expired
//! (its holder crashed). Both happen in one transaction, so two daemons
//! sharing a remote store never run the same due job twice, and a job killed
//! mid-run is resumed once its lease lapses. The `job` row keeps the next due
//! time and totals for `certkeeper jobs` and `/metrics`.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{Store, StoreError, with_conflict_retry};

/// A job's state as `certkeeper jobs` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobState {
    /// Job name.
    pub name: String,
    /// Cron schedule.
    pub schedule: String,
    /// Next due time (Unix seconds).
    pub next_due: i64,
    /// Runs finished (succeeded or failed).
    pub runs: i64,
    /// Runs that failed.
    pub failures: i64,
    /// `succeeded` or `failed`, for the last finished run.
    pub last_status: Option<String>,
    /// The last failure's error.
    pub last_error: Option<String>,
    /// When the last run finished (Unix seconds).
    pub last_finished: Option<i64>,
}

/// One run of a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRun {
    /// Job name.
    pub job: String,
    /// The due time this run is for (Unix seconds).
    pub due: i64,
    /// `running`, `succeeded` or `failed`.
    pub state: String,
    /// Who holds (or last held) the lease.
    pub lease_holder: String,
    /// When the lease lapses (Unix seconds).
    pub lease_expires: i64,
    /// How many times the run was started (more than 1 after a takeover).
    pub attempts: i64,
    /// When the current attempt started.
    pub started: i64,
    /// When it finished.
    pub finished: Option<i64>,
    /// Error of a failed run.
    pub error: Option<String>,
}

impl Store {
    /// Registers a job, keeping its next due time if it is already known and
    /// the schedule has not changed.
    pub async fn register_job(
        &self,
        name: &str,
        schedule: &str,
        first_due: i64,
    ) -> Result<JobState, StoreError> {
        let vars = json!({ "name": name, "schedule": schedule, "due": first_due });
        let rows: Vec<JobState> = with_conflict_retry(|| {
            self.rows(
                "UPSERT type::record('job', $name) SET name = $name,
                    next_due = IF schedule = $schedule AND next_due != NONE { next_due } ELSE { $due },
                    schedule = $schedule, runs = runs ?? 0, failures = failures ?? 0
                 RETURN AFTER",
                vars.clone(),
                0,
            )
        })
        .await?;
        rows.into_iter()
            .next()
            .ok_or_else(|| StoreError::Url("job upsert returned nothing".into()))
    }

    /// Makes a registered job due now; false when no job has that name.
    /// A run is one per due second (`job_run:[name, due]`): asked again in
    /// the second of its last run, it is due the next second, not never.
    pub async fn run_job_now(&self, name: &str, now: i64) -> Result<bool, StoreError> {
        let rows: Vec<serde_json::Value> = with_conflict_retry(|| {
            self.rows(
                "LET $last = (SELECT VALUE due FROM job_run WHERE job = $name
                     ORDER BY due DESC LIMIT 1)[0] ?? ($now - 1);
                 UPDATE type::record('job', $name)
                     SET next_due = math::min([next_due, math::max([$now, $last + 1])])
                     RETURN name",
                json!({ "name": name, "now": now }),
                1,
            )
        })
        .await?;
        Ok(!rows.is_empty())
    }

    /// Every registered job.
    pub async fn jobs(&self) -> Result<Vec<JobState>, StoreError> {
        self.rows("SELECT * OMIT id FROM job ORDER BY name", json!({}), 0)
            .await
    }

    /// Runs of a job, newest first.
    pub async fn job_runs(&self, name: &str, limit: usize) -> Result<Vec<JobRun>, StoreError> {
        self.rows(
            "SELECT * OMIT id FROM job_run WHERE job = $name ORDER BY due DESC LIMIT $limit",
            json!({ "name": name, "limit": limit }),
            0,
        )
        .await
    }

    /// Tries to claim the run of `name` due at `due`. Returns the run when this
    /// holder now owns it (new, or taken over from a lapsed lease), `None` when
    /// another holder has it or it already finished.
    pub async fn claim_run(
        &self,
        name: &str,
        due: i64,
        holder: &str,
        now: i64,
        lease_seconds: i64,
    ) -> Result<Option<JobRun>, StoreError> {
        let vars = json!({
            "name": name, "due": due, "holder": holder, "now": now,
            "expires": now + lease_seconds,
        });
        self.claim_one(CLAIM, vars).await
    }

    /// Extends the lease of a run this holder owns. Returns false when the
    /// lease was lost (taken over after it lapsed).
    pub async fn renew_lease(
        &self,
        name: &str,
        due: i64,
        holder: &str,
        expires: i64,
    ) -> Result<bool, StoreError> {
        let rows: Vec<serde_json::Value> = with_conflict_retry(|| {
            self.rows(
                "UPDATE type::record('job_run', [$name, $due]) SET lease_expires = $expires
                 WHERE state = 'running' AND lease_holder = $holder RETURN lease_expires",
                json!({ "name": name, "due": due, "holder": holder, "expires": expires }),
                0,
            )
        })
        .await?;
        Ok(!rows.is_empty())
    }

    /// Records the end of a run this holder owns and moves the job's next due
    /// time on. An error of `None` means success.
    pub async fn finish_run(
        &self,
        name: &str,
        due: i64,
        holder: &str,
        now: i64,
        error: Option<&str>,
        next_due: i64,
    ) -> Result<(), StoreError> {
        let vars = json!({
            "name": name, "due": due, "holder": holder, "now": now,
            "error": error, "state": if error.is_some() { "failed" } else { "succeeded" },
            "next_due": next_due,
        });
        with_conflict_retry(|| self.run(FINISH, vars.clone())).await?;
        Ok(())
    }
}

const CLAIM: &str = r#"
BEGIN TRANSACTION;
LET $id = type::record('job_run', [$name, $due]);
LET $run = (SELECT * FROM $id)[0];
IF $run = NONE {
    CREATE $id CONTENT {
        job: $name, due: $due, state: 'running', lease_holder: $holder,
        lease_expires: $expires, attempts: 1, started: $now, finished: NONE, error: NONE
    };
} ELSE IF $run.state = 'running' AND $run.lease_expires < $now {
    UPDATE $id SET lease_holder = $holder, lease_expires = $expires,
        attempts += 1, started = $now;
};
SELECT * OMIT id FROM $id WHERE state = 'running' AND lease_holder = $holder AND started = $now;
COMMIT TRANSACTION;
"#;

const FINISH: &str = r#"
BEGIN TRANSACTION;
LET $id = type::record('job_run', [$name, $due]);
IF (SELECT VALUE lease_holder FROM $id)[0] = $holder {
    UPDATE $id SET state = $state, finished = $now, error = $error;
    UPDATE type::record('job', $name) SET
        next_due = math::max([next_due, $next_due]),
        runs += 1,
        failures += IF $error = NONE { 0 } ELSE { 1 },
        last_status = $state, last_error = $error, last_finished = $now;
};
COMMIT TRANSACTION;
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_claim_per_due_run_and_takeover_after_lapse() {
        let store = Store::memory().await.unwrap();
        store.register_job("j", "0 * * * * *", 100).await.unwrap();
        let a = store.claim_run("j", 100, "a", 100, 10).await.unwrap();
        assert!(a.is_some());
        assert!(
            store
                .claim_run("j", 100, "b", 105, 10)
                .await
                .unwrap()
                .is_none(),
            "lease held"
        );
        assert!(store.renew_lease("j", 100, "a", 120).await.unwrap());
        assert!(
            store
                .claim_run("j", 100, "b", 115, 10)
                .await
                .unwrap()
                .is_none(),
            "renewed"
        );
        let b = store
            .claim_run("j", 100, "b", 121, 10)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(b.attempts, 2);
        assert!(
            !store.renew_lease("j", 100, "a", 200).await.unwrap(),
            "a lost it"
        );
        // a's late finish is ignored; b's counts.
        store
            .finish_run("j", 100, "a", 122, None, 160)
            .await
            .unwrap();
        assert_eq!(store.jobs().await.unwrap()[0].runs, 0);
        store
            .finish_run("j", 100, "b", 123, Some("boom"), 160)
            .await
            .unwrap();
        let job = &store.jobs().await.unwrap()[0];
        assert_eq!((job.runs, job.failures, job.next_due), (1, 1, 160));
        assert_eq!(job.last_error.as_deref(), Some("boom"));
        assert!(
            store
                .claim_run("j", 100, "c", 500, 10)
                .await
                .unwrap()
                .is_none(),
            "finished"
        );
    }

    #[tokio::test]
    async fn concurrent_claims_have_one_winner() {
        let store = Store::memory().await.unwrap();
        store.register_job("j", "0 * * * * *", 100).await.unwrap();
        let mut tasks = Vec::new();
        for i in 0..8 {
            let s = store.clone();
            tasks.push(tokio::spawn(async move {
                s.claim_run("j", 100, &format!("h{i}"), 100, 30)
                    .await
                    .unwrap()
                    .is_some()
            }));
        }
        let mut winners = 0;
        for t in tasks {
            winners += usize::from(t.await.unwrap());
        }
        assert_eq!(winners, 1);
    }
}
