//! `kiln token new|hash`: bearer tokens for `kiln serve`'s `[[token]]` entries.

use std::io::Read;

use kiln_server::auth::{Scope, hash_token};
use serde_json::json;

use crate::args::TokenCommand;
use crate::output::emit;

/// Tokens start with this, so that a leaked one is recognisable (secret scanners, logs).
const PREFIX: &str = "kiln_";

/// Runs `kiln token ...`.
pub(crate) fn token(command: TokenCommand, as_json: bool) -> anyhow::Result<()> {
    match command {
        TokenCommand::New { name, scopes } => {
            let scopes = scopes
                .iter()
                .map(|s| s.trim().parse::<Scope>())
                .collect::<Result<Vec<_>, _>>()?;
            let secret: [u8; 32] = rand::random();
            let token = format!("{PREFIX}{}", blake3::Hash::from_bytes(secret).to_hex());
            let hash = hash_token(&token).to_string();
            let names: Vec<&str> = scopes.iter().map(|s| s.as_str()).collect();
            emit(
                as_json,
                json!({"name": name, "scopes": names, "token": token, "hash": hash}),
                || {
                    let list = names
                        .iter()
                        .map(|s| format!("{s:?}"))
                        .collect::<Vec<_>>()
                        .join(", ");
                    format!(
                        "token: {token}\n\n\
                         Give the token to the app (Authorization: Bearer <token>); add this to \
                         kiln.toml, which keeps only its hash:\n\n\
                         [[token]]\nname = {name:?}\nscopes = [{list}]\nhash = \"{hash}\""
                    )
                },
            );
            Ok(())
        }
        TokenCommand::Hash => {
            let mut text = String::new();
            std::io::stdin().read_to_string(&mut text)?;
            let token = text.trim();
            if token.is_empty() {
                return Err(kiln_core::Error::invalid("no token on stdin").into());
            }
            let hash = hash_token(token).to_string();
            emit(as_json, json!({ "hash": hash }), || hash.clone());
            Ok(())
        }
    }
}
