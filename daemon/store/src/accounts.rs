//! Accounts: org units (a tree), users with a role and units, API tokens
//! (only their hash is kept) and portal sessions.
//!
//! - `org_unit:⟨name⟩` `{ name, parent }`
//! - `user:⟨name⟩` `{ name, role, units, password_hash, disabled, created, email, phone }`
//! - `api_token:⟨id⟩` `{ id, user, secret_hash, label, created, expires, revoked }`

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{Store, StoreError, with_conflict_retry};
use certkeeper_model::admin::Role;

/// An org unit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrgUnit {
    /// Unique name.
    pub name: String,
    /// The unit it belongs to.
    pub parent: Option<String>,
}

impl OrgUnit {
    /// `units` and every unit below them in `all`, parents before children.
    pub fn descendants(all: &[OrgUnit], units: &[String]) -> Vec<String> {
        let mut out: Vec<String> = units.to_vec();
        let mut i = 0;
        while i < out.len() {
            let parent = out[i].clone();
            for u in all {
                if u.parent.as_deref() == Some(parent.as_str()) && !out.contains(&u.name) {
                    out.push(u.name.clone());
                }
            }
            i += 1;
        }
        out
    }
}

/// A user account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// Unique name (an e-mail address or a login).
    pub name: String,
    /// Its role.
    pub role: Role,
    /// Org units it administers or belongs to.
    #[serde(default)]
    pub units: Vec<String>,
    /// Argon2id PHC string; absent for token-only accounts. Never sent out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_hash: Option<String>,
    /// A disabled account cannot sign in and its tokens stop working.
    #[serde(default)]
    pub disabled: bool,
    /// When it was created (Unix seconds).
    pub created: i64,
    /// Where the user's alerts go by e-mail (a contact entry of the same
    /// name takes precedence).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Where the user's text messages go (E.164).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
}

impl User {
    /// The account without its password hash, as the API shows it.
    pub fn public(&self) -> User {
        User {
            password_hash: None,
            ..self.clone()
        }
    }
}

/// An API token's record (the secret itself is never stored).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiToken {
    /// Public id (the lookup key, part of the token).
    pub id: String,
    /// Its user.
    pub user: String,
    /// SHA-256 of the secret part. Never sent out.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub secret_hash: String,
    /// What it is for.
    #[serde(default)]
    pub label: String,
    /// When it was created (Unix seconds).
    pub created: i64,
    /// When it stops working (Unix seconds).
    pub expires: Option<i64>,
    /// When it was revoked (Unix seconds).
    pub revoked: Option<i64>,
}

/// A portal session (the cookie's value is never stored, only its hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// Its user.
    pub user: String,
    /// When it was created (Unix seconds).
    pub created: i64,
    /// When it ends (Unix seconds).
    pub expires: i64,
    /// Key of its CSRF token, hex.
    pub csrf_key: String,
}

impl Store {
    /// Records a session under the hash of its id.
    pub async fn create_session(&self, id_hash: &str, session: &Session) -> Result<(), StoreError> {
        self.run(
            "CREATE type::record('session', $id) CONTENT $doc RETURN NONE",
            json!({ "id": id_hash, "doc": session }),
        )
        .await?;
        Ok(())
    }

    /// A live session by the hash of its id.
    pub async fn session(&self, id_hash: &str, now: i64) -> Result<Option<Session>, StoreError> {
        let rows: Vec<Session> = self
            .rows(
                "SELECT * OMIT id FROM type::record('session', $id) WHERE expires > $now",
                json!({ "id": id_hash, "now": now }),
                0,
            )
            .await?;
        Ok(rows.into_iter().next())
    }

    /// Ends a session; and forgets expired ones.
    pub async fn delete_session(&self, id_hash: &str, now: i64) -> Result<(), StoreError> {
        self.run(
            "DELETE type::record('session', $id); DELETE session WHERE expires <= $now;",
            json!({ "id": id_hash, "now": now }),
        )
        .await?;
        Ok(())
    }

    /// Ends every session of `user` (its password changed, or it was
    /// disabled); answers how many there were.
    pub async fn end_sessions_of(&self, user: &str) -> Result<usize, StoreError> {
        let ended: Vec<serde_json::Value> = self
            .rows(
                "DELETE session WHERE user = $user RETURN BEFORE",
                json!({ "user": user }),
                0,
            )
            .await?;
        Ok(ended.len())
    }

    /// Every org unit.
    pub async fn org_units(&self) -> Result<Vec<OrgUnit>, StoreError> {
        self.rows(
            "SELECT name, parent FROM org_unit ORDER BY name",
            json!({}),
            0,
        )
        .await
    }

    /// Whether an org unit of this name exists.
    pub async fn org_unit_exists(&self, name: &str) -> Result<bool, StoreError> {
        let rows: Vec<String> = self
            .rows(
                "SELECT VALUE name FROM type::record('org_unit', $name)",
                json!({ "name": name }),
                0,
            )
            .await?;
        Ok(!rows.is_empty())
    }

    /// Creates or moves an org unit.
    pub async fn put_org_unit(&self, unit: &OrgUnit) -> Result<(), StoreError> {
        let vars = json!({ "name": unit.name, "parent": unit.parent });
        with_conflict_retry(|| {
            self.run(
                "UPSERT type::record('org_unit', $name) CONTENT { name: $name, parent: $parent } RETURN NONE",
                vars.clone(),
            )
        })
        .await?;
        Ok(())
    }

    /// A user by name.
    pub async fn user(&self, name: &str) -> Result<Option<User>, StoreError> {
        let rows: Vec<User> = self
            .rows(
                "SELECT * OMIT id FROM type::record('user', $name)",
                json!({ "name": name.to_lowercase() }),
                0,
            )
            .await?;
        Ok(rows.into_iter().next())
    }

    /// Every user.
    pub async fn users(&self) -> Result<Vec<User>, StoreError> {
        self.rows("SELECT * OMIT id FROM user ORDER BY name", json!({}), 0)
            .await
    }

    /// Whether any account exists (before the first, the API is as open as
    /// `api.token` makes it).
    pub async fn has_users(&self) -> Result<bool, StoreError> {
        let rows: Vec<String> = self
            .rows("SELECT VALUE name FROM user LIMIT 1", json!({}), 0)
            .await?;
        Ok(!rows.is_empty())
    }

    /// Creates a user; fails if the name is taken.
    pub async fn create_user(&self, user: &User) -> Result<(), StoreError> {
        let mut doc = serde_json::to_value(user)?;
        doc["name"] = json!(user.name.to_lowercase());
        doc["password_hash"] = json!(user.password_hash);
        let vars = json!({ "name": user.name.to_lowercase(), "doc": doc });
        self.run(
            "CREATE type::record('user', $name) CONTENT $doc RETURN NONE",
            vars,
        )
        .await?;
        Ok(())
    }

    /// Replaces a user's role, units, password hash and disabled flag.
    pub async fn update_user(&self, user: &User) -> Result<(), StoreError> {
        let mut doc = serde_json::to_value(user)?;
        doc["name"] = json!(user.name.to_lowercase());
        doc["password_hash"] = json!(user.password_hash);
        let vars = json!({ "name": user.name.to_lowercase(), "doc": doc });
        with_conflict_retry(|| {
            self.run(
                "UPDATE type::record('user', $name) CONTENT $doc RETURN NONE",
                vars.clone(),
            )
        })
        .await?;
        Ok(())
    }

    /// Records a new token.
    pub async fn create_token(&self, token: &ApiToken) -> Result<(), StoreError> {
        let mut doc = serde_json::to_value(token)?;
        doc["secret_hash"] = json!(token.secret_hash);
        self.run(
            "CREATE type::record('api_token', $id) CONTENT $doc RETURN NONE",
            json!({ "id": token.id, "doc": doc }),
        )
        .await?;
        Ok(())
    }

    /// A token by id.
    pub async fn token(&self, id: &str) -> Result<Option<ApiToken>, StoreError> {
        let rows: Vec<ApiToken> = self
            .rows(
                "SELECT *, record::id(id) AS id FROM type::record('api_token', $id)",
                json!({ "id": id }),
                0,
            )
            .await?;
        Ok(rows.into_iter().next())
    }

    /// Tokens of a user, or of everyone.
    pub async fn tokens(&self, user: Option<&str>) -> Result<Vec<ApiToken>, StoreError> {
        let filter = if user.is_some() {
            "WHERE user = $user"
        } else {
            ""
        };
        let mut rows: Vec<ApiToken> = self
            .rows(
                &format!("SELECT *, record::id(id) AS id FROM api_token {filter} ORDER BY created"),
                json!({ "user": user.map(str::to_lowercase) }),
                0,
            )
            .await?;
        for t in &mut rows {
            t.secret_hash.clear();
        }
        Ok(rows)
    }

    /// Revokes a token; `false` when there is no such token.
    pub async fn revoke_token(&self, id: &str, now: i64) -> Result<bool, StoreError> {
        let rows: Vec<serde_json::Value> = self
            .rows(
                "UPDATE type::record('api_token', $id) SET revoked = $now WHERE revoked = NONE RETURN AFTER",
                json!({ "id": id, "now": now }),
                0,
            )
            .await?;
        Ok(!rows.is_empty())
    }
}
