//! A fake OAuth token endpoint: checks the JWT-bearer grant the way
//! Google's documentation describes it (RS256 signature against the
//! service account's public key, `iss`, `aud` = this URL, `scope`, `iat`,
//! `exp` at most an hour after `iat`) and hands out opaque tokens.

use super::{Shared, new_token};
use aws_lc_rs::signature::{RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey};
use axum::Form;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use std::collections::HashMap;

fn refuse(description: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(json!({"error": "invalid_grant", "error_description": description})),
    )
        .into_response()
}

/// Verifies an assertion; Ok(claims) or the reason.
pub fn verify(
    assertion: &str,
    public_key_der: &[u8],
    client_email: &str,
    audience: &str,
) -> Result<Value, String> {
    let parts: Vec<&str> = assertion.split('.').collect();
    if parts.len() != 3 {
        return Err("Invalid JWT: not three parts".into());
    }
    let header: Value = URL_SAFE_NO_PAD
        .decode(parts[0])
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or("Invalid JWT header")?;
    if header["alg"] != "RS256" {
        return Err(format!("Invalid JWT: alg {}", header["alg"]));
    }
    let signature = URL_SAFE_NO_PAD
        .decode(parts[2])
        .map_err(|_| "Invalid JWT signature encoding")?;
    let signed = format!("{}.{}", parts[0], parts[1]);
    UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, public_key_der)
        .verify(signed.as_bytes(), &signature)
        .map_err(|_| "Invalid JWT Signature.".to_string())?;
    let claims: Value = URL_SAFE_NO_PAD
        .decode(parts[1])
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or("Invalid JWT claims")?;
    if claims["iss"] != client_email {
        return Err(format!("Invalid issuer {}", claims["iss"]));
    }
    if claims["aud"] != audience {
        return Err(format!("Invalid audience {}", claims["aud"]));
    }
    if claims["scope"].as_str().is_none_or(|s| s.is_empty()) {
        return Err("Invalid scope: empty".into());
    }
    let (Some(iat), Some(exp)) = (claims["iat"].as_u64(), claims["exp"].as_u64()) else {
        return Err("Invalid JWT: iat/exp".into());
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    if exp <= iat || exp - iat > 3600 {
        return Err("Invalid JWT: exp must be at most an hour after iat".into());
    }
    if iat > now + 300 || exp < now {
        return Err(
            "Invalid JWT: Token must be a short-lived token and in a reasonable timeframe".into(),
        );
    }
    Ok(claims)
}

pub async fn token(
    State(shared): State<Shared>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let (key, email, audience, lifetime) = {
        let s = shared.lock().unwrap();
        (
            s.public_key.clone(),
            s.client_email.clone(),
            format!("{}/token", s.base_url),
            s.token_lifetime,
        )
    };
    if form.get("grant_type").map(String::as_str)
        != Some("urn:ietf:params:oauth:grant-type:jwt-bearer")
    {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": "unsupported_grant_type", "error_description": "Invalid grant_type"})),
        )
            .into_response();
    }
    let Some(assertion) = form.get("assertion") else {
        return refuse("Missing assertion");
    };
    let mut s = shared.lock().unwrap();
    match verify(assertion, &key, &email, &audience) {
        Ok(claims) => {
            let token = new_token();
            s.tokens.push(token.clone());
            s.assertions.push(claims);
            axum::Json(json!({
                "access_token": token,
                "expires_in": lifetime,
                "token_type": "Bearer",
            }))
            .into_response()
        }
        Err(reason) => {
            s.refused_assertions.push(reason.clone());
            refuse(&reason)
        }
    }
}
