//! Token revocation: a not-before time per user (a kick: every device) and per device (a
//! REGISTER logout), in the store's database, read at each upgrade.
//!
//! Why no cache: pods share the database, so a kick on one pod must refuse an upgrade on another
//! right after. A pod-local cache would need an invalidation that reaches every pod before its
//! next upgrade; instead each upgrade reads two rows by primary key on a small pool of its own
//! (the upgrade also writes the user's name, so this is not what bounds a connect storm). The
//! one race left — an upgrade checked just before a kick committed and registered just after the
//! kick looked its routes up — is closed by checking once more after the route is registered
//! (`crate::http`).

use std::time::Duration;

use async_trait::async_trait;
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Pool, Type};

use super::Claims;
use crate::error::{Error, Result};

/// How long a revocation lookup may take before the upgrade is refused with 503.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(3);

/// The device id of a user's row (a kick): every device of the user.
const ALL_DEVICES: &str = "";

/// Not-before times of tokens.
#[async_trait]
pub trait Revocations: Send + Sync + 'static {
    /// Refuses `user`'s tokens issued before `at_ms` — on `device` only, or on every device.
    /// Times only move forward: an earlier `at_ms` than the one kept changes nothing.
    async fn revoke(&self, user: &str, device: Option<&str>, at_ms: i64) -> Result<()>;

    /// The latest not-before time of `user` and of its `device` (0: never revoked).
    async fn not_before(&self, user: &str, device: &str) -> Result<i64>;
}

/// Checks a token of `user` issued at `iat_ms` (none: no `iat`) and presented by `device`
/// against the revocations: 401 when it was issued before its user or device was revoked, or has
/// no `iat` and either was; 503 when the lookup failed.
pub async fn check_issued(
    revocations: &dyn Revocations,
    user: &str,
    device: &str,
    iat_ms: Option<i64>,
) -> Result<()> {
    let lookup = revocations.not_before(user, device);
    let not_before = match tokio::time::timeout(LOOKUP_TIMEOUT, lookup).await {
        Ok(Ok(at)) => at,
        Ok(Err(e)) => {
            return Err(Error::UnavailableFrom {
                context: "cannot check whether the token was revoked; try again".into(),
                source: Box::new(e),
            })
        }
        Err(_) => {
            return Err(Error::Unavailable(
                "cannot check whether the token was revoked (timeout); try again".into(),
            ))
        }
    };
    if not_before > 0 && iat_ms.unwrap_or(0) < not_before {
        metrics::counter!("chat_revoked_tokens_refused_total").increment(1);
        return Err(Error::Unauthorized(if iat_ms.is_none() {
            "token has no iat and its user or device was logged out; get a new token".into()
        } else {
            "token was revoked (the user was kicked or the device logged out); get a new token"
                .into()
        }));
    }
    Ok(())
}

/// [`check_issued`] for `claims` presented by `device`.
pub async fn check(revocations: &dyn Revocations, claims: &Claims, device: &str) -> Result<()> {
    check_issued(revocations, &claims.sub, device, claims.issued_at_ms()).await
}

/// [`Revocations`] over a sqlx pool: SQLite's or PostgreSQL's (`token_revocations`).
pub struct SqlRevocations<DB: Database>(pub Pool<DB>);

#[async_trait]
impl<DB> Revocations for SqlRevocations<DB>
where
    DB: Database,
    for<'c> &'c Pool<DB>: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    usize: ColumnIndex<DB::Row>,
{
    async fn revoke(&self, user: &str, device: Option<&str>, at_ms: i64) -> Result<()> {
        let max = if DB::NAME == "PostgreSQL" {
            "GREATEST"
        } else {
            "MAX"
        };
        let sql = format!(
            "INSERT INTO token_revocations (user_id, device_id, not_before) VALUES ($1, $2, $3)
             ON CONFLICT (user_id, device_id)
             DO UPDATE SET not_before = {max}(token_revocations.not_before, excluded.not_before)"
        );
        sqlx::query(&sql)
            .bind(user)
            .bind(device.unwrap_or(ALL_DEVICES))
            .bind(at_ms)
            .execute(&self.0)
            .await?;
        Ok(())
    }

    async fn not_before(&self, user: &str, device: &str) -> Result<i64> {
        let (at,): (i64,) = sqlx::query_as(
            "SELECT COALESCE(MAX(not_before), 0) FROM token_revocations
             WHERE user_id = $1 AND device_id IN ($2, $3)",
        )
        .bind(user)
        .bind(ALL_DEVICES)
        .bind(device)
        .fetch_one(&self.0)
        .await?;
        Ok(at)
    }
}
