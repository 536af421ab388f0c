//! Domain operations between the routes and the store: plain async functions over
//! the [`Store`](riposte_core::store::Store) (and the blob store), each returning a
//! typed error (`thiserror`) whose message is fit to show the user as is.
//!
//! No HTTP here: no actix type, no status code. A route parses its request, calls
//! one service, and maps the service's error to a status in one `From` impl next
//! to its handlers (`routes/*.rs`); the same rule then answers the API and the
//! pages alike.
//!
//! - [`accounts`]: registration (names that look alike, a team of one).
//! - [`bundles`]: challenge bundles uploaded as archives, checked and imported.
//! - [`announcements`]: posting and retracting announcements.
//! - [`editing`]: a challenge's bundle written back out, and its metadata edited.
//! - [`event`]: the event's timeline (start, end, scoreboard freeze).
//! - [`exports`]: results as CSV or JSON tables for organizers.
//! - [`queue`]: the evaluation queue's health, and retrying failed jobs.
//! - [`audit`]: the audit log of organizer and admin actions.
//! - [`moderation`]: every submission, filtered, for organizers.
//! - [`admin`]: roles and bans, and what an admin may not do to themselves.
//! - [`teams`]: creating, joining and leaving teams.
//! - [`writeups`]: the organizers' solution and the teams' write-ups, published at the close.
//! - [`hints`]: a challenge's hints, unlocked by a team for a cost.
//! - [`flags`]: checking a flag and recording the attempt and the solve.
//! - [`uploads`]: what an upload must pass before it is queued.
//! - [`challenges`]: the challenge a user may see.

pub mod accounts;
pub mod admin;
pub mod announcements;
pub mod audit;
pub mod bundles;
pub mod challenges;
pub mod editing;
pub mod event;
pub mod exports;
pub mod flags;
pub mod hints;
pub mod moderation;
pub mod queue;
pub mod teams;
pub mod uploads;
pub mod writeups;

#[cfg(test)]
mod tests {
    /// The services speak no HTTP: a test, so the rule survives the next edit.
    #[test]
    fn services_use_no_web_framework_type() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/services");
        let mut read = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            // Code only: comments and this test's own words left out.
            let code: String = text
                .split("#[cfg(test)]")
                .next()
                .unwrap_or_default()
                .lines()
                .filter(|l| !l.trim_start().starts_with("//"))
                .collect::<Vec<_>>()
                .join("\n");
            for word in ["actix", "HttpResponse", "StatusCode"] {
                assert!(
                    !code.contains(word),
                    "{} uses {word}: services return typed errors, routes map them to HTTP",
                    path.display()
                );
            }
            read += 1;
        }
        assert!(read >= 5, "read {read} service files");
    }
}
