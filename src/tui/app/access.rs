//! Who each side acts as and until when, judged against the app's clock:
//! fine, running out (under an hour) or expired, and whether it outlasts a
//! plan's estimated run. Views only pick a style and a length from this.

use super::App;
use super::inventory::SideId;
use crate::inventory::Access;
use crate::plan::Plan;

/// Under this much time left, expiry is shown as a warning.
pub const WARN_SECONDS: u64 = 3600;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Urgency {
    /// No expiry, or more than an hour left.
    Fine,
    /// Under an hour left.
    Soon,
    Expired,
}

/// Access as the console shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessStatus {
    pub identity: String,
    /// What follows the identity in [`Access::describe`]:
    /// `expires 2026-11-28 12:00 UTC (in 53 min)`, `EXPIRED …`, `no expiry`.
    pub detail: String,
    /// The same in a few words for narrow panes: `expires in 53 min`.
    pub short: String,
    pub urgency: Urgency,
    pub expires_at: Option<u64>,
}

impl AccessStatus {
    pub fn new(access: &Access, now_unix: u64) -> AccessStatus {
        let described = access.describe(now_unix);
        let detail = described
            .strip_prefix(access.identity.as_str())
            .map(|rest| rest.trim_start_matches(" · ").to_string())
            .unwrap_or(described);
        let (urgency, short) = match access.expires_at {
            None => (Urgency::Fine, "no expiry".to_string()),
            Some(_) if access.renews => (Urgency::Fine, "renewed automatically".to_string()),
            Some(at) if at <= now_unix => (Urgency::Expired, "EXPIRED".to_string()),
            Some(at) => {
                let left = at - now_unix;
                let urgency = if left < WARN_SECONDS {
                    Urgency::Soon
                } else {
                    Urgency::Fine
                };
                (urgency, format!("expires in {}", left_text(left)))
            }
        };
        AccessStatus {
            identity: access.identity.clone(),
            detail,
            short,
            urgency,
            // A renewed session does not end the run: nothing to warn about.
            expires_at: access.expires_at.filter(|_| !access.renews),
        }
    }

    /// The whole line: `identity · detail`.
    pub fn line(&self) -> String {
        format!("{} · {}", self.identity, self.detail)
    }

    /// Seconds the credentials still work, if they expire.
    pub fn left(&self, now_unix: u64) -> Option<u64> {
        self.expires_at.map(|at| at.saturating_sub(now_unix))
    }

    /// They stop working before `seconds` from now have passed.
    pub fn ends_within(&self, now_unix: u64, seconds: u64) -> bool {
        self.left(now_unix).is_some_and(|left| left < seconds)
    }
}

/// `53 min`, `5 h`: the same rounding as [`Access::describe`].
pub fn left_text(seconds: u64) -> String {
    if seconds >= 2 * 3600 {
        format!("{} h", seconds / 3600)
    } else {
        format!("{} min", seconds.div_ceil(60))
    }
}

/// A side whose credentials will not last the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOutlasts {
    pub side: SideId,
    pub cloud: String,
    pub status: AccessStatus,
    /// The plan's estimate the credentials fall short of.
    pub estimate_seconds: u64,
}

impl App {
    /// A side's access as of the app's clock, when its cloud said who we are.
    pub fn access(&self, side: SideId) -> Option<AccessStatus> {
        let access = self.pane(side).inventory()?.access.as_ref()?;
        Some(AccessStatus::new(access, self.now_unix))
    }

    /// Some side's credentials expire: worth a look once a minute.
    pub fn watches_expiry(&self) -> bool {
        [SideId::Source, SideId::Target]
            .into_iter()
            .any(|side| self.access(side).is_some_and(|a| a.expires_at.is_some()))
    }

    /// What the expiry texts read now (a change means a redraw).
    pub(super) fn expiry_shown(&self) -> [Option<(String, String)>; 2] {
        [SideId::Source, SideId::Target].map(|side| self.access(side).map(|a| (a.detail, a.short)))
    }

    /// Sides of `plan` whose credentials run out (or already have) before
    /// the plan's estimated end: the operator should renew them first.
    pub fn access_short_of(&self, plan: &Plan) -> Vec<RunOutlasts> {
        let estimate = plan.summary.estimate_seconds;
        [
            (SideId::Source, &plan.source.cloud),
            (SideId::Target, &plan.target.cloud),
        ]
        .into_iter()
        // A pane switched to another cloud since planning says nothing here.
        .filter(|(side, cloud)| self.pane(*side).cloud == **cloud)
        .filter_map(|(side, cloud)| {
            let status = self.access(side)?;
            let short =
                status.urgency == Urgency::Expired || status.ends_within(self.now_unix, estimate);
            short.then(|| RunOutlasts {
                side,
                cloud: cloud.clone(),
                status,
                estimate_seconds: estimate,
            })
        })
        .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access(expires_at: Option<u64>) -> Access {
        Access {
            identity: "arn:aws:sts::1:assumed-role/migrate/x".into(),
            expires_at,
            renews: false,
        }
    }

    #[test]
    fn urgency_follows_the_time_left() {
        let now = 1_800_000_000;
        let fine = AccessStatus::new(&access(Some(now + 3 * 3600)), now);
        assert_eq!(fine.urgency, Urgency::Fine);
        assert_eq!(fine.short, "expires in 3 h");
        assert!(fine.detail.starts_with("expires 2027-"), "{}", fine.detail);
        let soon = AccessStatus::new(&access(Some(now + 40 * 60)), now);
        assert_eq!(soon.urgency, Urgency::Soon);
        assert_eq!(soon.short, "expires in 40 min");
        let gone = AccessStatus::new(&access(Some(now)), now);
        assert_eq!(gone.urgency, Urgency::Expired);
        assert!(gone.detail.starts_with("EXPIRED"), "{}", gone.detail);
        let never = AccessStatus::new(&access(None), now);
        assert_eq!(
            (never.urgency, never.detail.as_str()),
            (Urgency::Fine, "no expiry")
        );
        assert_eq!(
            never.line(),
            "arn:aws:sts::1:assumed-role/migrate/x · no expiry"
        );
    }

    #[test]
    fn a_run_longer_than_the_credentials_is_caught() {
        let now = 1_800_000_000;
        let status = AccessStatus::new(&access(Some(now + 5 * 3600)), now);
        assert!(status.ends_within(now, 6 * 3600));
        assert!(!status.ends_within(now, 4 * 3600));
        assert!(!AccessStatus::new(&access(None), now).ends_within(now, u64::MAX));
    }

    #[test]
    fn a_session_the_tool_renews_is_no_warning() {
        let now = 1_800_000_000;
        let renewing = Access {
            renews: true,
            ..access(Some(now + 40 * 60))
        };
        let status = AccessStatus::new(&renewing, now);
        assert_eq!(status.urgency, Urgency::Fine);
        assert_eq!(status.short, "renewed automatically");
        assert!(
            status.detail.contains("renewed automatically"),
            "{}",
            status.detail
        );
        assert!(
            !status.ends_within(now, 6 * 3600),
            "a long run is not at risk"
        );
    }
}
