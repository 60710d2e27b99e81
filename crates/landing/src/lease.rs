//! One run at a time, with nothing but create-if-absent objects.
//!
//! The lease is the highest-numbered object under `state/_lease/`. Taking
//! it, renewing it or giving it up each *creates* the next number, so when
//! two runs race, the store lets exactly one create it: no compare-and-swap
//! on a mutable object is needed, which a folder cannot offer and Cloud
//! Storage emulators do not honour on every call. A crashed run simply
//! stops renewing; once its lease expires, the next run takes over.
//!
//! Runs of the daily schedule are recorded under `state/_runs/{day}.json`
//! so a tick that finds today's run finished does nothing (no catch-up),
//! and one that finds it cut short by its time budget continues it.

use crate::protocol::{Landing, LandingError};
use crate::store::ObjectStore;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use std::time::Duration;

const LEASE_PREFIX: &str = "state/_lease/";
const RUNS_PREFIX: &str = "state/_runs/";

/// A held lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub number: u32,
    pub holder: String,
    pub expires_at: Timestamp,
    /// Set when taking this lease took over an expired one: its holder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub taken_over_from: Option<String>,
}

/// What `state/_runs/{day}.json` says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRecord {
    pub finished: bool,
    pub summary: String,
    pub recorded_at: Timestamp,
}

fn key(number: u32) -> String {
    format!("{LEASE_PREFIX}lease-{number:08}.json")
}

fn number_of(key: &str) -> Option<u32> {
    key.strip_prefix(LEASE_PREFIX)?.strip_prefix("lease-")?.strip_suffix(".json")?.parse().ok()
}

fn ttl(seconds: Duration) -> jiff::SignedDuration {
    jiff::SignedDuration::try_from(seconds).unwrap_or(jiff::SignedDuration::from_secs(3600))
}

fn held(l: &Lease) -> LandingError {
    LandingError::Conflict(format!(
        "another run holds the lease: {} until {}; this run stops (it resumes where that one leaves off)",
        l.holder, l.expires_at
    ))
}

impl<S: ObjectStore> Landing<S> {
    async fn latest_lease(&self) -> Result<Option<Lease>, LandingError> {
        let keys = self.store().list(LEASE_PREFIX).await?;
        let Some(n) = keys.iter().filter_map(|k| number_of(k)).max() else { return Ok(None) };
        let bytes = self.store().get(&key(n)).await?.ok_or_else(|| {
            LandingError::Damaged(format!("{} vanished while being read; try again", key(n)))
        })?;
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| LandingError::Damaged(format!("{} is not a lease ({e}); delete state/_lease/ to reset", key(n))))
    }

    /// Creates lease `number`; `Ok(None)` when another run created it first.
    async fn create_lease(&self, lease: &Lease) -> Result<Option<Lease>, LandingError> {
        let bytes = serde_json::to_vec_pretty(lease).expect("leases serialise");
        if !self.store().put_new(&key(lease.number), &bytes, "application/json").await? {
            return Ok(None);
        }
        // Old leases are history; keep the last few for whoever debugs.
        if lease.number > 3 {
            for k in self.store().list(LEASE_PREFIX).await? {
                if number_of(&k).is_some_and(|n| n + 3 < lease.number) {
                    let _ = self.store().delete(&k).await;
                }
            }
        }
        Ok(Some(lease.clone()))
    }

    /// The current lease, held or not.
    pub async fn read_lease(&self) -> Result<Option<Lease>, LandingError> {
        self.latest_lease().await
    }

    /// Takes the lease for `ttl_for`, or takes over an expired one, or one
    /// held by `stale` (a holder its host knows is dead).
    pub async fn acquire_lease(
        &self,
        holder: &str,
        ttl_for: Duration,
        now: Timestamp,
        stale: Option<&str>,
    ) -> Result<Lease, LandingError> {
        let latest = self.latest_lease().await?;
        if let Some(l) = &latest {
            if l.expires_at > now && l.holder != holder && Some(l.holder.as_str()) != stale {
                return Err(held(l));
            }
        }
        // Reaching here past another holder's lease means it expired
        // without being released, or its holder is known dead: that run
        // crashed or stalled.
        let taken_over_from = latest.as_ref().filter(|l| l.holder != holder && !l.released()).map(|l| l.holder.clone());
        let next = Lease {
            number: latest.as_ref().map_or(1, |l| l.number + 1),
            holder: holder.to_string(),
            expires_at: now + ttl(ttl_for),
            taken_over_from,
        };
        match self.create_lease(&next).await? {
            Some(l) => Ok(l),
            None => match self.latest_lease().await? {
                Some(l) => Err(held(&l)),
                None => Err(LandingError::Conflict("the lease changed hands while being taken; try again".into())),
            },
        }
    }

    /// Extends `lease`; a conflict if another run took it over meanwhile.
    pub async fn renew_lease(&self, lease: &Lease, ttl_for: Duration, now: Timestamp) -> Result<Lease, LandingError> {
        let latest = self.latest_lease().await?;
        if let Some(l) = latest.filter(|l| l.number != lease.number) {
            return Err(LandingError::Conflict(format!(
                "the lease was taken over by {} (lease {} after this run's {}); this run stops",
                l.holder, l.number, lease.number
            )));
        }
        let next = Lease { number: lease.number + 1, holder: lease.holder.clone(), expires_at: now + ttl(ttl_for), taken_over_from: None };
        match self.create_lease(&next).await? {
            Some(l) => Ok(l),
            None => Err(LandingError::Conflict("the lease was taken over while being renewed; this run stops".into())),
        }
    }

    /// Gives the lease up: the next lease number, already expired.
    pub async fn release_lease(&self, lease: &Lease, now: Timestamp) -> Result<(), LandingError> {
        let next = Lease { number: lease.number + 1, holder: format!("{} (released)", lease.holder), expires_at: now, taken_over_from: None };
        self.create_lease(&next).await.map(|_| ())
    }

    pub async fn record_run(&self, day: &str, finished: bool, summary: &str, now: Timestamp) -> Result<(), LandingError> {
        check_day(day)?;
        let record = RunRecord { finished, summary: summary.to_string(), recorded_at: now };
        let bytes = serde_json::to_vec_pretty(&record).expect("run records serialise");
        Ok(self.store().put(&format!("{RUNS_PREFIX}{day}.json"), &bytes, "application/json").await?)
    }

    pub async fn run_record(&self, day: &str) -> Result<Option<RunRecord>, LandingError> {
        check_day(day)?;
        match self.store().get(&format!("{RUNS_PREFIX}{day}.json")).await? {
            None => Ok(None),
            Some(b) => serde_json::from_slice(&b).map(Some).map_err(|e| LandingError::Damaged(format!("state/_runs/{day}.json: {e}"))),
        }
    }
}

impl Lease {
    fn released(&self) -> bool {
        self.holder.ends_with(" (released)")
    }
}

fn check_day(day: &str) -> Result<(), LandingError> {
    day.parse::<jiff::civil::Date>()
        .map(|_| ())
        .map_err(|_| LandingError::Invalid(format!("run day '{day}' is not a date (YYYY-MM-DD)")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_run::run;
    use crate::FsStore;


    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    const TEN_MIN: Duration = Duration::from_secs(600);

    #[test]
    fn one_holder_at_a_time_and_takeover_after_expiry() {
        let dir = tempfile::tempdir().unwrap();
        let l = Landing::new(FsStore::new(dir.path()));
        let a = run(l.acquire_lease("run A", TEN_MIN, t("2026-11-27T08:00:00Z"), None)).unwrap();
        assert_eq!((a.number, a.taken_over_from.as_deref()), (1, None));
        let err = run(l.acquire_lease("run B", TEN_MIN, t("2026-11-27T08:05:00Z"), None)).unwrap_err().to_string();
        assert!(err.contains("run A") && err.contains("2026-11-27T08:10:00Z"), "{err}");
        let a2 = run(l.renew_lease(&a, TEN_MIN, t("2026-11-27T08:09:00Z"))).unwrap();
        assert_eq!(a2.number, 2);
        // A stops renewing (crashed); after expiry B takes over.
        let b = run(l.acquire_lease("run B", TEN_MIN, t("2026-11-27T08:20:00Z"), None)).unwrap();
        assert_eq!((b.number, b.taken_over_from.as_deref()), (3, Some("run A")));
        // A wakes up: its renewal is refused.
        assert!(run(l.renew_lease(&a2, TEN_MIN, t("2026-11-27T08:21:00Z"))).unwrap_err().to_string().contains("run B"));
        // B releases: C takes it at once, and nothing is "taken over".
        run(l.release_lease(&b, t("2026-11-27T08:30:00Z"))).unwrap();
        let c = run(l.acquire_lease("run C", TEN_MIN, t("2026-11-27T08:30:01Z"), None)).unwrap();
        assert_eq!(c.taken_over_from, None);
        // C is killed; its host knows, and D takes over before expiry.
        let d = run(l.acquire_lease("run D", TEN_MIN, t("2026-11-27T08:31:00Z"), Some("run C"))).unwrap();
        assert_eq!(d.taken_over_from.as_deref(), Some("run C"));
        assert!(run(l.acquire_lease("run E", TEN_MIN, t("2026-11-27T08:32:00Z"), Some("run C"))).is_err());
    }

    #[test]
    fn a_lost_race_is_a_conflict() {
        let dir = tempfile::tempdir().unwrap();
        let l = Landing::new(FsStore::new(dir.path()));
        let a = run(l.acquire_lease("run A", TEN_MIN, t("2026-11-27T08:00:00Z"), None)).unwrap();
        // B saw no lease and tries to create number 1 too: the store refuses.
        let b = Lease { number: 1, holder: "run B".into(), expires_at: t("2026-11-27T08:10:00Z"), taken_over_from: None };
        assert_eq!(run(l.create_lease(&b)).unwrap(), None);
        assert_eq!(run(l.latest_lease()).unwrap(), Some(a));
    }

    #[test]
    fn run_records_say_whether_the_day_finished() {
        let dir = tempfile::tempdir().unwrap();
        let l = Landing::new(FsStore::new(dir.path()));
        assert_eq!(run(l.run_record("2026-11-27")).unwrap(), None);
        run(l.record_run("2026-11-27", false, "budget spent", t("2026-11-27T10:00:00Z"))).unwrap();
        assert!(!run(l.run_record("2026-11-27")).unwrap().unwrap().finished);
        run(l.record_run("2026-11-27", true, "done", t("2026-11-28T08:00:00Z"))).unwrap();
        assert!(run(l.run_record("2026-11-27")).unwrap().unwrap().finished);
        assert!(run(l.record_run("../x", true, "", t("2026-11-28T08:00:00Z"))).is_err());
    }
}
