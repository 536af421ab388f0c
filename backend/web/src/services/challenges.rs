//! Which challenge a user may see (the rule itself is `core::visibility`).

use riposte_core::store::{ChallengeRecord, Store, StoreError, User};
use riposte_core::visibility::may_see;

/// The challenge if `user` may see it: hidden challenges only for organizers.
/// Every route that names a challenge by slug asks this.
pub async fn visible(
    store: &dyn Store,
    user: Option<&User>,
    slug: &str,
) -> Result<Option<ChallengeRecord>, StoreError> {
    let record = store.challenge_by_slug(slug).await?;
    Ok(record.filter(|c| may_see(c, user)))
}
