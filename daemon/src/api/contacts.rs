//! `/api/v1/contacts`: how the people and aliases certificates name are
//! reached, and what they want to hear about (the store's `contacts` module
//! says what an entry holds; `alerts::contacts` how routing uses it).
//! Primary admin only: entries hold phone numbers and addresses.

use axum::Json;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::accounts::{USER_NAME_RULE, audit, check_email, check_phone, valid_user_name};
use super::{ApiError, AppState};
use certkeeper_model::admin::Principal;
use certkeeper_store::contacts::Contact;

/// `GET /api/v1/contacts`.
pub async fn list(State(state): State<AppState>) -> Result<Response, ApiError> {
    let items = state.store.contacts().await.map_err(ApiError::internal)?;
    Ok(Json(json!({ "items": items })).into_response())
}

/// `POST /api/v1/contacts`: creates or replaces an entry.
pub async fn put(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Json(contact): Json<Contact>,
) -> Result<Response, ApiError> {
    let name = contact.name.trim().to_lowercase();
    if !valid_user_name(&name) {
        return Err(ApiError::bad_request(format!("name: {USER_NAME_RULE}")));
    }
    if let Some(bad) = contact
        .events
        .iter()
        .find(|e| !crate::config::alerts::EVENT_TYPES.contains(&e.as_str()))
    {
        return Err(ApiError::bad_request(format!(
            "events: unknown event type `{bad}`; expected {}",
            crate::config::alerts::EVENT_TYPES.join(", ")
        )));
    }
    let config = state.config();
    if let Some(bad) = contact
        .channels
        .iter()
        .find(|c| !config.notifiers.contains_key(c.as_str()))
    {
        return Err(ApiError::bad_request(format!(
            "channels: no notifier `{bad}` is configured ([notifier.NAME] in the config)"
        )));
    }
    let contact = Contact {
        email: check_email(contact.email)?,
        phone: check_phone(contact.phone)?,
        name,
        ..contact
    };
    let before = state
        .store
        .contacts()
        .await
        .map_err(ApiError::internal)?
        .into_iter()
        .find(|c| c.name == contact.name);
    state
        .store
        .put_contact(&contact)
        .await
        .map_err(ApiError::internal)?;
    audit(
        &state,
        &principal,
        "contact_set",
        Some(&contact.name),
        before.map(|b| json!(b)),
        Some(json!(contact)),
    )
    .await?;
    Ok(Json(contact).into_response())
}

/// `DELETE /api/v1/contacts/{name}`.
pub async fn remove(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let name = name.to_lowercase();
    if !state
        .store
        .remove_contact(&name)
        .await
        .map_err(ApiError::internal)?
    {
        return Err(ApiError::not_found(format!("no contact entry `{name}`")));
    }
    audit(
        &state,
        &principal,
        "contact_remove",
        Some(&name),
        None,
        None,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
