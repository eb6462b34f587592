//! `scorehook receiver`: a tiny local endpoint for the generic provider's
//! actions. It checks each POST's signature, prints the action, and answers
//! 204, so the quick start can show actions arriving without a CRM. Given a
//! `whsec_` signing secret it checks the Standard Webhooks signature; given
//! any other secret, the deprecated `X-Scorehook-*` one of tenants without a
//! signing secret.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use tokio::net::TcpListener;

use crate::crm::signature::{self, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use crate::crm::standard_webhooks;

pub async fn run(listener: TcpListener, secret: String) -> std::io::Result<()> {
    let router = Router::new().route("/actions", post(receive)).with_state(secret);
    axum::serve(listener, router).await
}

async fn receive(State(secret): State<String>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let now = chrono::Utc::now();
    let verdict = match standard_webhooks::key_of(&secret) {
        Some(key) => standard_webhooks::verify(
            &key,
            header(standard_webhooks::ID_HEADER),
            header(standard_webhooks::TIMESTAMP_HEADER),
            header(standard_webhooks::SIGNATURE_HEADER),
            &body,
            now,
        ),
        None => signature::verify(&secret, header(TIMESTAMP_HEADER), header(SIGNATURE_HEADER), &body, now),
    };
    match verdict {
        Ok(()) => {
            println!("{}", String::from_utf8_lossy(&body));
            StatusCode::NO_CONTENT
        }
        Err(e) => {
            eprintln!("refused an action: {e}");
            StatusCode::UNAUTHORIZED
        }
    }
}
